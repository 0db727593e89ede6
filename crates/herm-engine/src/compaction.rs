//! Compaction planning: how large the next request is, where the conversation may be cut
//! (between whole exchanges: never between a tool call and its result, never inside
//! interleaved input), how much stays verbatim, and the stages in which the older part is
//! summarised so that no summarising request is itself too long. Pure; the worker performs
//! the calls (`worker/compact.rs`).

use crate::history::Turn;
use crate::memory::rank::tokens;
use herm_llm::Message;
use herm_types::attachment::{Attachment, AttachmentKind};
use std::sync::Arc;

/// The system prompt of a summarising call (the fake model in tests keys on its opening).
pub const SUMMARY_SYSTEM: &str = "You compact conversations between a user and an AI agent. Write a faithful, \
dense summary that lets the agent continue the work without the original: the user's goals and requests, \
decisions and preferences stated, facts learned, files and tools used with their important results, what is \
done and what remains. Keep names, numbers, paths and identifiers exactly. Write in plain prose and lists, no \
preamble.";

/// Tokens reserved for the summarising call's instructions.
const SUMMARY_OVERHEAD: u64 = 600;

/// Estimated tokens of one message (from its lengths: nothing is rendered).
pub fn message_tokens(m: &Message) -> u64 {
    let (bytes, media): (usize, u64) = match m {
        Message::User { text, media } => (text.len(), media.iter().map(|x| media_tokens(&x.attachment)).sum()),
        Message::Assistant { text, tool_calls } => {
            (text.len() + tool_calls.iter().map(|c| c.tool.len() + json_len(&c.arguments)).sum::<usize>(), 0)
        }
        Message::ToolResults(rs) => (
            rs.iter().map(|r| r.content.len()).sum(),
            rs.iter().flat_map(|r| &r.media).map(|x| media_tokens(&x.attachment)).sum(),
        ),
    };
    (bytes as u64).div_ceil(4) + 4 + media
}

/// Estimated tokens of what a request sends besides the conversation: the system prompt
/// and the tools.
pub fn fixed_tokens(req: &herm_llm::ModelRequest) -> u64 {
    let tools: usize = req.tools.iter().map(|t| t.name.len() + t.description.len() + json_len(&t.input_schema)).sum();
    ((req.system.len() + tools) as u64).div_ceil(4)
}

/// The length of `v` as compact JSON, counted without building the text.
pub fn json_len(v: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Estimated tokens of a conversation's messages.
pub fn messages_tokens(messages: &[Arc<Message>]) -> u64 {
    messages.iter().map(|m| message_tokens(m)).sum()
}

/// Estimated tokens of a whole request.
pub fn request_tokens(req: &herm_llm::ModelRequest) -> u64 {
    fixed_tokens(req) + messages_tokens(&req.messages)
}

/// A call's usage as the provider reported it, or, when it reported none (llama.cpp's
/// OpenAI-compatible server streams no usage), herm's estimate from the request and the
/// answer; `true` when estimated. An estimate is never zero for a call that was made, so no
/// budget can be passed by a provider that does not count.
pub fn usage_or_estimate(req: &herm_llm::ModelRequest, resp: &herm_llm::ModelResponse) -> (u64, u64, bool) {
    let u = &resp.usage;
    if u.input_tokens > 0 || u.output_tokens > 0 {
        return (u.input_tokens, u.output_tokens, false);
    }
    let answer = Message::Assistant { text: resp.text.clone(), tool_calls: resp.tool_calls.clone() };
    (request_tokens(req), message_tokens(&answer), true)
}

/// Estimated tokens of an image or document: an image costs about its pixels / 750, up to
/// the ~1,600 of the largest image a provider keeps unscaled; a PDF about one token per 8
/// bytes, at least a page's worth.
pub fn media_tokens(a: &Attachment) -> u64 {
    match (a.kind, a.width, a.height) {
        (AttachmentKind::Image, Some(w), Some(h)) => (u64::from(w) * u64::from(h) / 750).clamp(85, 1_600),
        (AttachmentKind::Image, _, _) => 1_600,
        _ => a.size.div_ceil(8).max(1_500),
    }
}

/// A message as transcript text (what a summarising call reads).
pub fn render(m: &Message) -> String {
    match m {
        Message::User { text, media } => {
            let mut s = format!("User: {text}");
            for m in media {
                s.push(' ');
                s.push_str(&m.attachment.describe());
            }
            s.push('\n');
            s
        }
        Message::Assistant { text, tool_calls } => {
            let mut s = if text.is_empty() { String::new() } else { format!("Agent: {text}\n") };
            for c in tool_calls {
                s.push_str(&format!("Agent called `{}` with {}\n", c.tool, c.arguments));
            }
            s
        }
        Message::ToolResults(rs) => rs
            .iter()
            .map(|r| {
                let media: String = r.media.iter().map(|m| format!(" {}", m.attachment.describe())).collect();
                format!("Tool result{}: {}{media}\n", if r.is_error { " (error)" } else { "" }, r.content)
            })
            .collect(),
    }
}

/// Whether the conversation may be cut before `turns[i]`: everything before comes from
/// earlier log entries than everything after, and a tool result is not separated from its call.
pub fn valid_cut(turns: &[Turn], i: usize) -> bool {
    if i == 0 || i >= turns.len() || matches!(*turns[i].message, Message::ToolResults(_)) {
        return false;
    }
    let before = turns[..i].iter().map(|t| t.last).max().unwrap_or(0);
    let after = turns[i..].iter().map(|t| t.first).min().unwrap_or(i64::MAX);
    before < after
}

/// Where to cut: the first kept turn and the last sequence replaced. Keeps the most recent
/// turns that fit `keep_recent` tokens (at least the last exchange); `None` when no cut
/// would replace anything.
pub fn choose_cut(turns: &[Turn], keep_recent: u64) -> Option<(usize, i64)> {
    let mut kept = 0;
    let mut start = turns.len();
    while start > 0 && kept + turns[start - 1].tokens <= keep_recent {
        start -= 1;
        kept += turns[start].tokens;
    }
    // Keep fewer, never more: the first valid cut at or after `start`; else the last valid
    // cut before it.
    let i = (start.max(1)..turns.len())
        .find(|&i| valid_cut(turns, i))
        .or_else(|| (1..start).rev().find(|&i| valid_cut(turns, i)))?;
    let through = turns[..i].iter().map(|t| t.last).max()?;
    Some((i, through))
}

/// One summarising call: the transcript of `turns[from..to]` and the last sequence it covers.
#[derive(Debug, PartialEq)]
pub struct Stage {
    pub to: usize,
    pub through: i64,
    pub text: String,
}

/// Splits `turns[..cut]` into stages whose transcripts fit `stage_tokens` each. A stage ends
/// at a valid cut when it can (so a crash after it loses nothing), and a single turn too long
/// for any stage is shortened in the middle.
pub fn stages(turns: &[Turn], cut: usize, stage_tokens: u64) -> Vec<Stage> {
    let limit = stage_tokens.saturating_sub(SUMMARY_OVERHEAD).max(256);
    let mut out = Vec::new();
    let mut text = String::new();
    for (i, t) in turns[..cut].iter().enumerate() {
        let piece = shorten(&render(&t.message), limit);
        let full = tokens(&text) + tokens(&piece) > limit;
        if full && !text.is_empty() && valid_cut(turns, i) {
            out.push(Stage {
                to: i,
                through: turns[..i].iter().map(|t| t.last).max().unwrap_or(0),
                text: std::mem::take(&mut text),
            });
        }
        text.push_str(&piece);
        if tokens(&text) > limit {
            text = shorten(&text, limit);
        }
    }
    if !text.is_empty() {
        out.push(Stage { to: cut, through: turns[..cut].iter().map(|t| t.last).max().unwrap_or(0), text });
    }
    out
}

/// `s` cut to about `limit` tokens, keeping its beginning and end.
pub fn shorten(s: &str, limit: u64) -> String {
    let max = (limit as usize) * 4;
    if s.len() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(80) / 2;
    let head_end = (0..=keep).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    let tail_start = (s.len() - keep..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    format!("{}\n[… {} characters left out …]\n{}", &s[..head_end], tail_start - head_end, &s[tail_start..])
}

/// The request a stage sends: what was summarised so far and the next part.
pub fn stage_prompt(previous: Option<&str>, text: &str) -> String {
    match previous {
        Some(p) => format!(
            "The summary so far:\n{p}\n\nThe conversation continued:\n{text}\nWrite the updated summary of everything."
        ),
        None => format!("The conversation:\n{text}\nWrite the summary."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herm_llm::ToolResultMsg;
    use herm_types::event::RequestedToolCall;

    fn user(t: &str, seq: i64) -> Turn {
        Turn::new(Message::user(t), seq, seq)
    }
    fn call(seq: i64) -> Turn {
        let c = RequestedToolCall { tool_use_id: "t".into(), tool: "x".into(), arguments: serde_json::json!({}) };
        Turn::new(Message::Assistant { text: String::new(), tool_calls: vec![c] }, seq, seq)
    }
    fn result(seq: i64) -> Turn {
        let r = ToolResultMsg { tool_use_id: "t".into(), content: "r".repeat(400), is_error: false, media: vec![] };
        Turn::new(Message::ToolResults(vec![r]), seq, seq)
    }
    fn said(t: &str, seq: i64) -> Turn {
        Turn::new(Message::Assistant { text: t.into(), tool_calls: vec![] }, seq, seq)
    }

    #[test]
    fn json_len_is_the_compact_texts_length() {
        for v in [
            serde_json::json!({}),
            serde_json::json!({"a": [1, 2.5, "é\"x"], "b": null, "c": {"d": true}}),
            serde_json::json!("line\nbreak"),
        ] {
            assert_eq!(json_len(&v), v.to_string().len());
        }
    }

    #[test]
    fn media_count_and_show_as_references() {
        let a = |w: Option<u32>, kind: AttachmentKind, size: u64| Attachment {
            kind,
            media_type: "image/png".into(),
            size,
            sha256: "ab".repeat(32),
            name: Some("shot.png".into()),
            attachment_id: None,
            url: None,
            width: w,
            height: w,
        };
        assert_eq!(media_tokens(&a(Some(100), AttachmentKind::Image, 9)), 85);
        assert_eq!(media_tokens(&a(Some(1000), AttachmentKind::Image, 9)), 1_333);
        assert_eq!(media_tokens(&a(Some(4000), AttachmentKind::Image, 9)), 1_600);
        assert_eq!(media_tokens(&a(None, AttachmentKind::Image, 9)), 1_600);
        assert_eq!(media_tokens(&a(None, AttachmentKind::Document, 800_000)), 100_000);
        let m = Message::User {
            text: "look".into(),
            media: vec![herm_llm::Media {
                attachment: a(Some(1000), AttachmentKind::Image, 9),
                source: herm_llm::MediaSource::Base64("QUJD".into()),
            }],
        };
        assert_eq!(message_tokens(&m), 1 + 4 + 1_333);
        let text = render(&m);
        assert!(text.contains("[image `shot.png`: image/png, 1000x1000, 9 bytes]"), "{text}");
        assert!(!text.contains("QUJD"), "a summary never reads the bytes");
    }

    #[test]
    fn cuts_never_split_a_call_from_its_result_or_interleaved_input() {
        let turns = vec![user("a", 1), call(2), result(3), said("b", 4), user("c", 5)];
        let valid: Vec<usize> = (0..=turns.len()).filter(|&i| valid_cut(&turns, i)).collect();
        assert_eq!(valid, vec![1, 3, 4]);
        // A deferred message written before the result it follows.
        let interleaved = vec![user("a", 1), call(2), result(4), user("late", 3), said("b", 5)];
        let valid: Vec<usize> = (0..=interleaved.len()).filter(|&i| valid_cut(&interleaved, i)).collect();
        assert_eq!(valid, vec![1, 4]);
    }

    #[test]
    fn the_cut_keeps_recent_turns_verbatim() {
        let turns: Vec<Turn> =
            (0..20).map(|i| if i % 2 == 0 { user(&"u".repeat(400), i) } else { said(&"a".repeat(400), i) }).collect();
        // Each turn is about 100 tokens: 300 keeps the last two or three.
        let (i, through) = choose_cut(&turns, 300).unwrap();
        assert!((17..=18).contains(&i), "{i}");
        assert_eq!(through, turns[i - 1].last);
        // Keeping everything replaces nothing but the first turn at most.
        assert_eq!(choose_cut(&turns, 1_000_000).map(|c| c.0), Some(1));
        assert_eq!(choose_cut(&[user("only", 1)], 10), None);
    }

    #[test]
    fn stages_fit_their_budget_and_end_at_cuts() {
        let turns: Vec<Turn> =
            (0..40).map(|i| if i % 2 == 0 { user(&"u".repeat(2000), i) } else { said(&"a".repeat(2000), i) }).collect();
        let s = stages(&turns, 36, 2000);
        assert!(s.len() > 1);
        for st in &s {
            assert!(tokens(&st.text) <= 2000, "{}", tokens(&st.text));
            assert!(st.to == 36 || valid_cut(&turns, st.to));
        }
        assert_eq!(s.last().map(|x| x.through), Some(35));
        // One huge turn is shortened, not sent whole.
        let huge = vec![user(&"x".repeat(100_000), 1), said("ok", 2)];
        let s = stages(&huge, 1, 2000);
        assert_eq!(s.len(), 1);
        assert!(tokens(&s[0].text) <= 2000 && s[0].text.contains("characters left out"));
    }
}
