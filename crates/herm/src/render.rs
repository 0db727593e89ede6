//! How the CLI shows work: a run's timeline (`herm runs show`), a usage table (`herm
//! usage`) and the lines of a live chat. Colour on a terminal, plain text when piped. Pure:
//! values in, text out (table-tested below).

use serde_json::Value;

/// Whether to colour: a terminal that did not ask for plain text (`NO_COLOR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        Self { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }
    fn paint(self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }
    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn cyan(self, s: &str) -> String {
        self.paint("36", s)
    }
    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

/// At most `max` characters of `text`'s first line, with an ellipsis if cut.
pub fn clip(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max && !text.contains('\n') {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max).collect();
    format!("{cut}…")
}

/// A tool call as `name(k=v, …)`, values clipped.
pub fn call(tool: &str, args: &Value) -> String {
    let parts: Vec<String> = match args.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(t) => format!("{:?}", clip(t, 40)),
                    other => clip(&other.to_string(), 40),
                };
                format!("{k}={v}")
            })
            .collect(),
        None => vec![clip(&args.to_string(), 60)],
    };
    format!("{tool}({})", parts.join(", "))
}

/// An RFC 3339 field, if present and well formed.
fn time(v: &Value, k: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s(v, k)).ok()
}

fn ms(v: u64) -> String {
    if v >= 10_000 { format!("{:.1} s", v as f64 / 1000.0) } else { format!("{v} ms") }
}

/// A run's timeline: one line per event with its offset from the run's start, then totals.
pub fn timeline(run: &Value, events: &[Value], st: Style) -> String {
    let start = time(run, "started_at");
    let mut out = format!(
        "{} {} — {} {}, {} steps\n",
        st.bold("run"),
        s(run, "run_id"),
        s(run, "kind"),
        match s(run, "status") {
            "completed" => st.green("completed"),
            "error" | "interrupted" => st.red(s(run, "status")),
            other => st.yellow(other),
        },
        n(run, "steps"),
    );
    for e in events {
        let offset = match (start, time(e, "created_at")) {
            (Some(a), Some(b)) => format!("{:>9}", format!("+{:.3}s", (b - a).num_milliseconds() as f64 / 1000.0)),
            _ => " ".repeat(9),
        };
        let what = match s(e, "type") {
            "message" => format!("{} {}", st.bold("user"), clip(s(e, "content"), 70)),
            "agent_message" => format!("{} {}", st.bold("agent"), clip(s(e, "content"), 70)),
            "model_call" => format!(
                "{} {} in {} · {} in / {} out{} · ${:.6}",
                st.cyan("model"),
                s(e, "model"),
                ms(n(e, "duration_ms")),
                n(e, "input_tokens"),
                n(e, "output_tokens"),
                if e["estimated"] == true { " (estimated)" } else { "" },
                e["cost_usd"].as_f64().unwrap_or(0.0)
            ),
            "tool_call" => format!("{} {}", st.cyan("tool →"), call(s(e, "tool"), &e["arguments"])),
            "tool_result" => {
                let outcome = s(e, "outcome");
                let painted = if outcome == "ok" { st.green(outcome) } else { st.red(outcome) };
                format!(
                    "{} {} {painted} in {} {}",
                    st.cyan("tool ←"),
                    s(e, "tool"),
                    ms(n(e, "duration_ms")),
                    st.dim(&clip(s(e, "result"), 50))
                )
            }
            "steering_request" => format!("{} {}", st.yellow("waits for a person:"), clip(s(e, "summary"), 60)),
            "steering_response" => format!("{} {}", st.yellow("a person answered:"), s(e, "result")),
            "budget" => st.red(&format!(
                "budget ({}) reached: {:.6} of {} USD spent, next call about {:.6}",
                s(e, "scope"),
                e["spent_usd"].as_f64().unwrap_or(0.0),
                e["limit_usd"],
                e["next_call_usd"].as_f64().unwrap_or(0.0)
            )),
            "compaction" => {
                format!("{} {} → {} tokens", st.cyan("compacted"), n(e, "tokens_before"), n(e, "tokens_after"))
            }
            "run_status" => {
                let err = e["error"]["code"].as_str().map(|c| format!(" ({c})")).unwrap_or_default();
                format!("{} {}{err}", st.dim("status"), s(e, "status"))
            }
            other => st.dim(other),
        };
        out.push_str(&format!("{} {what}\n", st.dim(&offset)));
    }
    let u = &run["usage"];
    out.push_str(&format!(
        "{} {} in / {} out tokens · ${:.6}{}\n",
        st.bold("total"),
        n(u, "input_tokens"),
        n(u, "output_tokens"),
        u["cost_usd"].as_f64().unwrap_or(0.0),
        match (start, time(run, "ended_at")) {
            (Some(a), Some(b)) => format!(" · {}", ms((b - a).num_milliseconds().max(0) as u64)),
            _ => String::new(),
        }
    ));
    out
}

/// The usage report as a table: one row per day (or model) and a total.
pub fn usage_table(report: &Value, by: &str, st: Style) -> String {
    let rows = report["data"].as_array().cloned().unwrap_or_default();
    let key_width = rows.iter().map(|r| s(r, "key").len()).max().unwrap_or(0).max(by.len()).max(5);
    let line = |key: &str, r: &Value| {
        format!(
            "{key:<key_width$}  {:>12}  {:>12}  {:>12}{}\n",
            n(r, "input_tokens"),
            n(r, "output_tokens"),
            format!("{:.6}", r["cost_usd"].as_f64().unwrap_or(0.0)),
            if r["estimated"] == true { "  (estimated)" } else { "" }
        )
    };
    let mut out =
        st.bold(&format!("{by:<key_width$}  {:>12}  {:>12}  {:>12}\n", "input tok", "output tok", "cost USD"));
    for r in &rows {
        out.push_str(&line(s(r, "key"), r));
    }
    out.push_str(&st.bold(&line("total", &report["total"])));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAIN: Style = Style { color: false };

    #[test]
    fn a_timeline_shows_offsets_tokens_cost_and_outcomes() {
        let run = json!({
            "run_id": "run_1", "kind": "user", "status": "error", "steps": 1,
            "started_at": "2026-12-02T10:00:00Z", "ended_at": "2026-12-02T10:00:01.5Z",
            "usage": {"input_tokens": 30, "output_tokens": 15, "cost_usd": 0.000315}
        });
        let events = vec![
            json!({"type": "model_call", "created_at": "2026-12-02T10:00:00.250Z", "model": "fake/m1", "duration_ms": 240,
                   "input_tokens": 30, "output_tokens": 15, "cost_usd": 0.000315}),
            json!({"type": "tool_call", "created_at": "2026-12-02T10:00:00.251Z", "tool": "lookup", "arguments": {"q": "a\nb"}}),
            json!({"type": "tool_result", "created_at": "2026-12-02T10:00:00.900Z", "tool": "lookup", "outcome": "ok",
                   "duration_ms": 649, "result": "found it\nand more"}),
            json!({"type": "budget", "created_at": "2026-12-02T10:00:01.5Z", "scope": "run", "limit_usd": 0.0005,
                   "spent_usd": 0.000315, "next_call_usd": 0.000315}),
            json!({"type": "run_status", "created_at": "2026-12-02T10:00:01.5Z", "status": "error",
                   "error": {"code": "insufficient_credits"}}),
        ];
        let text = timeline(&run, &events, PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "run run_1 — user error, 1 steps");
        assert_eq!(lines[1], "  +0.250s model fake/m1 in 240 ms · 30 in / 15 out · $0.000315");
        assert_eq!(lines[2], "  +0.251s tool → lookup(q=\"a…\")");
        assert_eq!(lines[3], "  +0.900s tool ← lookup ok in 649 ms found it…");
        assert!(lines[4].contains("budget (run) reached"), "{}", lines[4]);
        assert_eq!(lines[5], "  +1.500s status error (insufficient_credits)");
        assert_eq!(lines[6], "total 30 in / 15 out tokens · $0.000315 · 1500 ms");
        assert!(!text.contains('\x1b'), "plain when not a terminal");
        assert!(timeline(&run, &events, Style { color: true }).contains("\x1b[31m"));
    }

    #[test]
    fn a_usage_table_lines_up() {
        let report = json!({
            "data": [{"key": "2026-12-01", "input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0081, "estimated": false},
                     {"key": "2026-12-02", "input_tokens": 50, "output_tokens": 25, "cost_usd": 0.000525, "estimated": true}],
            "total": {"key": "total", "input_tokens": 1250, "output_tokens": 325, "cost_usd": 0.008625, "estimated": true}
        });
        let text = usage_table(&report, "day", PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "day            input tok    output tok      cost USD");
        assert_eq!(lines[1], "2026-12-01          1200           300      0.008100");
        assert_eq!(lines[2], "2026-12-02            50            25      0.000525  (estimated)");
        assert_eq!(lines[3], "total               1250           325      0.008625  (estimated)");
    }

    #[test]
    fn calls_are_compact() {
        assert_eq!(
            call("shell", &json!({"command": "ls -la", "timeout_secs": 5})),
            "shell(command=\"ls -la\", timeout_secs=5)"
        );
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a much longer line", 6), "a much…");
    }
}
