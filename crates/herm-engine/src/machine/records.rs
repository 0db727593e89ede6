//! Which records a step writes, and chained with what. The worker performs a step (a model
//! call, a tool call) and hands its outcome here; this decides the records that commit
//! together. Pure, so the rules that make resume exact are table-tested next to the machine:
//!
//! - a model response commits with the outage notes this run has not recorded yet, the
//!   agent's text (if any) and the `model_call`; if its first requested call needs nobody,
//!   that call's write-ahead `tool_call` commits with it (one durable write, not two);
//! - a tool result commits with what the call changed (or the server it found down) and,
//!   if the next requested call needs nobody, that call's write-ahead record;
//! - calls answered inline (no such tool, arguments that are not an object, or a tool that
//!   only reads the runtime's own state: [`ToolFacts::inline`]) have nothing to write ahead
//!   of: the leading ones that need nobody are answered before the commit, and each one's
//!   `tool_call` and `tool_result` join it, before the next call's write-ahead record;
//! - a call that needs a person is never chained: the next fold asks for it.

use super::Gate;
use herm_types::event::{McpState, RequestedToolCall};
use herm_types::*;

/// The records of one step and the call chained into it (to run right after the commit).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub records: Vec<EventKind>,
    pub chained: Option<RequestedToolCall>,
}

/// What the worker knows of the tools when it assembles a step.
pub trait ToolFacts {
    /// Who must act before a call of `tool` runs.
    fn gate(&self, tool: &str) -> Gate;
    /// The tool's `origin` on the wire (`unknown` for a tool that does not exist).
    fn origin(&self, tool: &str) -> String;
    /// Whether `call` is answered without an effect outside the log's own commit (no such
    /// tool, arguments that are not an object, a tool that only reads the runtime's state).
    fn inline(&self, call: &RequestedToolCall) -> bool;
}

/// A call answered inline and what answering it wrote: its `tool_result`, then what it
/// changed.
pub type Answered = (RequestedToolCall, Vec<EventKind>);

/// The records of calls answered inline: each one's `tool_call`, then what it wrote.
pub fn answered(answered: Vec<Answered>, tools: &dyn ToolFacts) -> Vec<EventKind> {
    let mut records = Vec::with_capacity(answered.len() * 2);
    for (c, wrote) in answered {
        records.push(tool_call(&c, tools));
        records.extend(wrote);
    }
    records
}

/// The calls a step leaves to run: the first [`inline_run`] of them `answered` before its
/// commit, and `next`, the call after those.
#[derive(Default)]
pub struct Then {
    pub answered: Vec<Answered>,
    pub next: Option<RequestedToolCall>,
}

/// How many of `calls`, from the first, are answered inline before the step commits: those
/// that need nobody and have no effect to write ahead of.
pub fn inline_run(calls: &[RequestedToolCall], tools: &dyn ToolFacts) -> usize {
    calls.iter().take_while(|c| tools.gate(&c.tool) == Gate::Free && tools.inline(c)).count()
}

/// The write-ahead record of a tool call.
pub fn tool_call(c: &RequestedToolCall, tools: &dyn ToolFacts) -> EventKind {
    EventKind::ToolCall {
        tool_use_id: c.tool_use_id.clone(),
        tool: c.tool.clone(),
        origin: tools.origin(&c.tool),
        arguments: c.arguments.clone(),
    }
}

/// Adds the calls answered inline (each one's write-ahead record, then what it wrote), then
/// chains the next call into the step if it needs nobody.
fn chain(mut records: Vec<EventKind>, then: Then, tools: &dyn ToolFacts) -> Step {
    records.extend(answered(then.answered, tools));
    let chained = then.next.filter(|c| tools.gate(&c.tool) == Gate::Free);
    if let Some(c) = &chained {
        records.push(tool_call(c, tools));
    }
    Step { records, chained }
}

/// The records of a model response. `outages` are the MCP servers that offered no tools to
/// this call (with the reason, redacted); `model_call` is the `model_call` record, whose
/// `tool_calls` are the calls the model asked for, and `then` what became of them.
pub fn after_model(
    log: &[Event],
    run: &RunId,
    outages: Vec<(String, String)>,
    text: String,
    model_call: EventKind,
    then: Then,
    tools: &dyn ToolFacts,
) -> Step {
    let mut records = Vec::new();
    for (server, message) in outages {
        let recorded = log.iter().any(|e| {
            e.run_id.as_ref() == Some(run) && matches!(&e.kind, EventKind::McpStatus { server: s, .. } if *s == server)
        });
        if !recorded {
            records.push(EventKind::McpStatus { server, status: McpState::Unavailable, message });
        }
    }
    if !text.is_empty() {
        records.push(EventKind::AgentMessage { content: text });
    }
    records.push(model_call);
    chain(records, then, tools)
}

/// The records of a finished tool call: its `tool_result`, then `extra` (workspace changes,
/// a server found down), then the calls after it answered inline, then the write-ahead
/// record of the next call if it needs nobody.
pub fn after_tool(result: EventKind, extra: Vec<EventKind>, then: Then, tools: &dyn ToolFacts) -> Step {
    let mut records = vec![result];
    records.extend(extra);
    chain(records, then, tools)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::tests::{Log, result};
    use herm_types::event::FileChange;
    use serde_json::json;

    /// `ask_*` tools need approval, `who` is a question, the rest are free; `gone` does not
    /// exist and `peek*` only reads: both are answered inline, and so is `ask_peek` (after
    /// its approval).
    struct Facts;
    impl ToolFacts for Facts {
        fn gate(&self, tool: &str) -> Gate {
            match tool {
                "who" => Gate::Question,
                t if t.starts_with("ask_") => Gate::Approval,
                _ => Gate::Free,
            }
        }
        fn origin(&self, tool: &str) -> String {
            if tool == "gone" { "unknown".into() } else { "builtin".into() }
        }
        fn inline(&self, call: &RequestedToolCall) -> bool {
            call.tool == "gone" || call.tool.contains("peek")
        }
    }

    /// What a step leaves of `calls` when each one answered inline wrote its result.
    fn then(calls: &[RequestedToolCall]) -> Then {
        let n = inline_run(calls, &Facts);
        Then {
            answered: calls[..n].iter().map(|c| (c.clone(), vec![result(&c.tool_use_id)])).collect(),
            next: calls.get(n).cloned(),
        }
    }

    #[test]
    fn inline_runs() {
        let (gone, peek, read, ask_peek, who) =
            (call("1", "gone"), call("2", "peek"), call("3", "read"), call("4", "ask_peek"), call("5", "who"));
        let cases: Vec<(&str, Vec<RequestedToolCall>, usize)> = vec![
            ("none", vec![], 0),
            ("a call with an effect first", vec![read.clone(), peek.clone()], 0),
            ("inline calls up to one with an effect", vec![gone.clone(), peek.clone(), read.clone(), peek.clone()], 2),
            ("all inline", vec![peek.clone(), gone.clone()], 2),
            ("an inline tool that needs approval waits for it", vec![peek.clone(), ask_peek.clone(), gone.clone()], 1),
            ("a question is never answered inline", vec![who.clone()], 0),
        ];
        for (name, calls, want) in cases {
            assert_eq!(inline_run(&calls, &Facts), want, "{name}");
        }
    }

    fn call(id: &str, tool: &str) -> RequestedToolCall {
        RequestedToolCall { tool_use_id: id.into(), tool: tool.into(), arguments: json!({"x": 1}) }
    }
    fn model(calls: &[RequestedToolCall]) -> EventKind {
        EventKind::ModelCall {
            model: "p/m".into(),
            input_tokens: 1,
            output_tokens: 1,
            cost_usd: 0.0,
            duration_ms: 1,
            tool_calls: calls.to_vec(),
            stop_reason: None,
            context_sequence: Some(3),
            estimated: false,
        }
    }
    fn written(c: &RequestedToolCall, origin: &str) -> EventKind {
        EventKind::ToolCall {
            tool_use_id: c.tool_use_id.clone(),
            tool: c.tool.clone(),
            origin: origin.into(),
            arguments: c.arguments.clone(),
        }
    }
    fn down(server: &str) -> EventKind {
        EventKind::McpStatus { server: server.into(), status: McpState::Unavailable, message: "refused".into() }
    }

    #[test]
    fn model_steps() {
        let run = RunId::new();
        let other = RunId::new();
        let (a, b, q, ask) = (call("1", "read"), call("2", "read"), call("3", "who"), call("4", "ask_send"));
        let (gone, peek) = (call("5", "gone"), call("6", "peek"));
        let outage = || vec![("gh".to_owned(), "refused".to_owned())];
        // (name, log, outages, text, requested calls, expected step)
        type Case = (&'static str, Log, Vec<(String, String)>, &'static str, Vec<RequestedToolCall>, Step);
        let cases: Vec<Case> = vec![
            (
                "a final answer: text and the model call",
                Log::new(),
                vec![],
                "done",
                vec![],
                Step { records: vec![EventKind::AgentMessage { content: "done".into() }, model(&[])], chained: None },
            ),
            (
                "no text, a free call: chained into the same write",
                Log::new(),
                vec![],
                "",
                vec![a.clone(), b.clone()],
                Step {
                    records: vec![model(&[a.clone(), b.clone()]), written(&a, "builtin")],
                    chained: Some(a.clone()),
                },
            ),
            (
                "a question first: not chained, the next fold asks",
                Log::new(),
                vec![],
                "hmm",
                vec![q.clone(), a.clone()],
                Step {
                    records: vec![EventKind::AgentMessage { content: "hmm".into() }, model(&[q.clone(), a.clone()])],
                    chained: None,
                },
            ),
            (
                "an approval first: not chained",
                Log::new(),
                vec![],
                "",
                vec![ask.clone()],
                Step { records: vec![model(std::slice::from_ref(&ask))], chained: None },
            ),
            (
                "calls answered inline first: each call and result in the same write, then the next free call's record",
                Log::new(),
                vec![],
                "",
                vec![gone.clone(), peek.clone(), a.clone(), peek.clone()],
                Step {
                    records: vec![
                        model(&[gone.clone(), peek.clone(), a.clone(), peek.clone()]),
                        written(&gone, "unknown"),
                        result("5"),
                        written(&peek, "builtin"),
                        result("6"),
                        written(&a, "builtin"),
                    ],
                    chained: Some(a.clone()),
                },
            ),
            (
                "answered inline up to a call that needs approval: that one waits for the fold",
                Log::new(),
                vec![],
                "",
                vec![peek.clone(), ask.clone()],
                Step {
                    records: vec![model(&[peek.clone(), ask.clone()]), written(&peek, "builtin"), result("6")],
                    chained: None,
                },
            ),
            (
                "a server down is noted once per run, before the text",
                Log::new(),
                outage(),
                "t",
                vec![],
                Step {
                    records: vec![down("gh"), EventKind::AgentMessage { content: "t".into() }, model(&[])],
                    chained: None,
                },
            ),
            (
                "already noted in this run: not again",
                Log::new().push(&run, down("gh")),
                outage(),
                "",
                vec![],
                Step { records: vec![model(&[])], chained: None },
            ),
            (
                "noted in another run only: noted for this one",
                Log::new().push(&other, down("gh")),
                outage(),
                "",
                vec![],
                Step { records: vec![down("gh"), model(&[])], chained: None },
            ),
        ];
        for (name, log, outages, text, calls, want) in cases {
            let step = after_model(&log.events, &run, outages, text.into(), model(&calls), then(&calls), &Facts);
            assert_eq!(step, want, "{name}");
        }
    }

    #[test]
    fn tool_steps() {
        let (b, ask, gone, peek) = (call("2", "read"), call("4", "ask_send"), call("5", "gone"), call("6", "peek"));
        let change = EventKind::Filesystem { change: FileChange::Modified, path: "a.txt".into() };
        // (name, what the call changed, the calls after it, expected step)
        type Case = (&'static str, Vec<EventKind>, Vec<RequestedToolCall>, Step);
        let cases: Vec<Case> = vec![
            ("the last call: its result alone", vec![], vec![], Step { records: vec![result("1")], chained: None }),
            (
                "changes commit with the result, then the next free call's record",
                vec![change.clone()],
                vec![b.clone()],
                Step { records: vec![result("1"), change.clone(), written(&b, "builtin")], chained: Some(b.clone()) },
            ),
            (
                "a next call that needs approval is left for the fold",
                vec![],
                vec![ask.clone()],
                Step { records: vec![result("1")], chained: None },
            ),
            (
                "an unknown tool is answered in the same write, with origin unknown",
                vec![],
                vec![gone.clone()],
                Step { records: vec![result("1"), written(&gone, "unknown"), result("5")], chained: None },
            ),
            (
                "calls answered inline after the result, then the next free call's record",
                vec![change.clone()],
                vec![peek.clone(), b.clone()],
                Step {
                    records: vec![
                        result("1"),
                        change.clone(),
                        written(&peek, "builtin"),
                        result("6"),
                        written(&b, "builtin"),
                    ],
                    chained: Some(b.clone()),
                },
            ),
        ];
        for (name, extra, rest, want) in cases {
            assert_eq!(after_tool(result("1"), extra, then(&rest), &Facts), want, "{name}");
        }
    }
}
