//! The operator CLI's HTTP client: it talks to a running herm like any other client.
//! The API key comes from `HERM_API_KEY` or a file, never from argv.

use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use crate::render::{self, Style};

pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str, key_file: Option<&PathBuf>) -> anyhow::Result<Self> {
        let key = match key_file {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?.trim().to_owned()
            }
            None => std::env::var("HERM_API_KEY").context("set HERM_API_KEY (or pass --api-key-file)")?,
        };
        Ok(Self { base: url.trim_end_matches('/').to_owned(), key, http: reqwest::Client::new() })
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = rb.bearer_auth(&self.key).send().await.context("cannot reach herm")?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{} {}: {}",
                status.as_u16(),
                body["code"].as_str().unwrap_or(""),
                body["detail"].as_str().unwrap_or("")
            );
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// Opens an SSE stream and calls `f` for each `(event, data)` until it returns false.
    pub async fn stream(&self, path: &str, mut f: impl FnMut(&str, &Value) -> bool) -> anyhow::Result<()> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .context("cannot reach herm")?;
        if !resp.status().is_success() {
            bail!("stream refused: {}", resp.status());
        }
        let mut events = resp.bytes_stream().eventsource();
        while let Some(ev) = events.next().await {
            let ev = ev.context("stream broke")?;
            let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            if !f(&ev.event, &data) {
                break;
            }
        }
        Ok(())
    }
}

pub async fn secrets_set(c: &Client, name: &str, description: Option<String>) -> anyhow::Result<()> {
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value)?;
    // One trailing newline (from `echo` or a file) is not part of the value.
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    anyhow::ensure!(!value.is_empty(), "pipe the secret's value on standard input");
    let r = c.post("/v1/secrets", &json!({"name": name, "value": value, "description": description})).await?;
    println!("{}", r["secret_id"].as_str().unwrap_or_default());
    Ok(())
}

pub async fn deploy(c: &Client, file: &PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let body: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => yaml_serde::from_str(&text).context("the file is neither JSON nor YAML")?,
    };
    let r = c.post("/v1/deployments", &body).await?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// Interactive chat: each line of standard input is a message; the answer streams back.
pub async fn chat(c: &Client, deployment: &str, thread: Option<String>) -> anyhow::Result<()> {
    let dep = c.get(&format!("/v1/deployments/{deployment}")).await?;
    let thread = thread.unwrap_or_else(|| dep["thread_id"].as_str().unwrap_or_default().to_owned());
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        print!("> ");
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let t = c.get(&format!("/v1/deployments/{deployment}/threads/{thread}")).await?;
        let mut after = t["last_sequence"].as_i64().unwrap_or(0);
        let sent = c
            .post(&format!("/v1/deployments/{deployment}/messages"), &json!({"content": line, "thread_id": thread}))
            .await?;
        let run = sent["run_id"].as_str().unwrap_or_default().to_owned();
        loop {
            let mut waiting = false;
            stream_run(c, &thread, &run, &mut after, &mut waiting).await?;
            if !waiting {
                break;
            }
            // The run waits for a person: answer every pending request, then follow it again.
            answer_pending(c, deployment, &thread, &mut || read_line(&stdin)).await?;
        }
    }
}

fn read_line(stdin: &std::io::Stdin) -> Option<String> {
    let mut s = String::new();
    match stdin.lock().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim().to_owned()),
    }
}

/// Follows the thread's stream for one run until it ends or waits for a person. The agent's
/// text is printed as its tokens stream; a message whose tokens went by before the stream
/// was open (a fast run) is printed whole from its committed record.
async fn stream_run(c: &Client, thread: &str, run: &str, after: &mut i64, waiting: &mut bool) -> anyhow::Result<()> {
    let st = Style::for_stdout();
    let mut streamed = false;
    c.stream(&format!("/v1/threads/{thread}/events/stream?after={after}"), |ev, d| {
        if let Some(seq) = d["sequence"].as_i64() {
            *after = seq;
        }
        if d["run_id"].as_str() != Some(run) {
            return true;
        }
        match ev {
            "token" => {
                streamed = true;
                print!("{}", d["delta"].as_str().unwrap_or_default());
                let _ = std::io::stdout().flush();
            }
            "agent_message" => {
                if !std::mem::take(&mut streamed) {
                    print!("{}", d["content"].as_str().unwrap_or_default());
                }
                println!();
            }
            "tool_call" => {
                println!("  {} {}", st.cyan("→"), render::call(d["tool"].as_str().unwrap_or_default(), &d["arguments"]))
            }
            "tool_output" => {
                print!("{}", st.dim(d["delta"].as_str().unwrap_or_default()));
                let _ = std::io::stdout().flush();
            }
            "tool_result" => {
                let outcome = d["outcome"].as_str().unwrap_or_default();
                let outcome = if outcome == "ok" { st.green(outcome) } else { st.red(outcome) };
                let first = render::clip(d["result"].as_str().unwrap_or_default(), 100);
                println!(
                    "  {} {} [{outcome}] {}",
                    st.cyan("←"),
                    d["tool"].as_str().unwrap_or_default(),
                    st.dim(&first)
                );
            }
            "steering_request" => {
                println!("  {} {}", st.yellow("? waits for you:"), d["summary"].as_str().unwrap_or_default())
            }
            "budget" => println!(
                "  {}",
                st.red(&format!(
                    "budget ({}) reached at {} USD",
                    d["scope"].as_str().unwrap_or_default(),
                    d["limit_usd"]
                ))
            ),
            "run_status" => match d["status"].as_str() {
                Some("completed") => return false,
                Some("waiting_on_human") => {
                    *waiting = true;
                    return false;
                }
                Some(s @ ("error" | "interrupted")) => {
                    println!(
                        "{}",
                        st.red(&format!("[run {s}: {}]", d["error"]["message"].as_str().unwrap_or_default()))
                    );
                    return false;
                }
                _ => {}
            },
            _ => {}
        }
        true
    })
    .await
}

/// Prompts for each pending request of a thread and sends the answers. `next` reads a line.
pub async fn answer_pending(
    c: &Client,
    deployment: &str,
    thread: &str,
    next: &mut dyn FnMut() -> Option<String>,
) -> anyhow::Result<usize> {
    let t = c.get(&format!("/v1/deployments/{deployment}/threads/{thread}")).await?;
    let pending = t["pending"].as_array().cloned().unwrap_or_default();
    for p in &pending {
        let rid = p["request_id"].as_str().unwrap_or_default();
        loop {
            let event = if p["kind"] == "question" {
                println!("  ? {}", p["question"].as_str().unwrap_or_default());
                let options: Vec<&str> =
                    p["options"].as_array().map(|o| o.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                for (i, o) in options.iter().enumerate() {
                    println!("    {}. {o}", i + 1);
                }
                print!("  answer: ");
                std::io::stdout().flush()?;
                let Some(line) = next() else { return Ok(0) };
                let answer = line
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| options.get(i.wrapping_sub(1)).map(|s| s.to_string()))
                    .unwrap_or(line);
                json!({"type": "user.answer", "request_id": rid, "answer": answer})
            } else {
                println!("  ? approve {}", p["summary"].as_str().unwrap_or_default());
                print!("  [a]llow, [d]eny or [e]dit: ");
                std::io::stdout().flush()?;
                let Some(choice) = next() else { return Ok(0) };
                match choice.chars().next() {
                    Some('a') => json!({"type": "user.tool_confirmation", "request_id": rid, "result": "allow"}),
                    Some('d') => {
                        print!("  message for the agent (optional): ");
                        std::io::stdout().flush()?;
                        let m = next().filter(|m| !m.is_empty());
                        json!({"type": "user.tool_confirmation", "request_id": rid, "result": "deny", "deny_message": m})
                    }
                    Some('e') => {
                        println!("  current arguments: {}", p["arguments"]);
                        print!("  new arguments (JSON): ");
                        std::io::stdout().flush()?;
                        let Some(raw) = next() else { return Ok(0) };
                        match serde_json::from_str::<Value>(&raw) {
                            Ok(input) => {
                                json!({"type": "user.tool_confirmation", "request_id": rid, "result": "allow", "input": input})
                            }
                            Err(e) => {
                                println!("  not JSON: {e}");
                                continue;
                            }
                        }
                    }
                    _ => continue,
                }
            };
            match c.post(&format!("/v1/threads/{thread}/events"), &json!({"events": [event]})).await {
                Ok(_) => break,
                // An invalid edit is refused and the request stays pending: ask again.
                Err(e) => println!("  {e}"),
            }
        }
    }
    Ok(pending.len())
}

/// `herm approve`: answer the pending requests of a deployment's thread.
pub async fn approve(c: &Client, deployment: &str, thread: Option<String>, list: bool) -> anyhow::Result<()> {
    let dep = c.get(&format!("/v1/deployments/{deployment}")).await?;
    let thread = thread.unwrap_or_else(|| dep["thread_id"].as_str().unwrap_or_default().to_owned());
    if list {
        let t = c.get(&format!("/v1/deployments/{deployment}/threads/{thread}")).await?;
        println!("{}", serde_json::to_string_pretty(&t["pending"])?);
        return Ok(());
    }
    let stdin = std::io::stdin();
    let n = answer_pending(c, deployment, &thread, &mut || read_line(&stdin)).await?;
    if n == 0 {
        println!("nothing is pending on {thread}");
    }
    Ok(())
}

pub async fn events_tail(c: &Client, deployment: &str, after: Option<String>) -> anyhow::Result<()> {
    let q = after.map(|a| format!("?after={a}")).unwrap_or_default();
    // A closed stdout (`| head`) ends the tail quietly instead of panicking.
    c.stream(&format!("/v1/deployments/{deployment}/events{q}"), |_, d| writeln!(std::io::stdout(), "{d}").is_ok())
        .await
}

/// `herm runs show`: a run's timeline with timings, tokens and cost.
pub async fn runs_show(c: &Client, deployment: &str, run: &str) -> anyhow::Result<()> {
    let r = c.get(&format!("/v1/deployments/{deployment}/runs/{run}")).await?;
    let thread = r["thread_id"].as_str().unwrap_or_default().to_owned();
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c.get(&format!("/v1/threads/{thread}/events?limit=100&cursor={cursor}")).await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        events.extend(data.into_iter().filter(|e| e["run_id"].as_str() == Some(run)));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    print!("{}", render::timeline(&r, &events, Style::for_stdout()));
    Ok(())
}

/// `herm usage`: tokens and cost per day (or model) over a window.
pub async fn usage(
    c: &Client,
    deployment: &str,
    from: Option<String>,
    to: Option<String>,
    by: &str,
) -> anyhow::Result<()> {
    let mut q = vec![format!("group_by={by}")];
    let today = chrono::Utc::now().date_naive();
    // A day count (`--days 7`) is the common question; `--from` wins.
    if let Some(f) = from {
        q.push(format!("from={f}"));
    } else {
        q.push(format!("from={}T00:00:00Z", today - chrono::Days::new(6)));
    }
    if let Some(t) = to {
        q.push(format!("to={t}"));
    }
    let report = c.get(&format!("/v1/deployments/{deployment}/usage?{}", q.join("&"))).await?;
    print!("{}", render::usage_table(&report, by, Style::for_stdout()));
    Ok(())
}
