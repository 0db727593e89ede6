//! Session events: sending (`user.message`, `user.interrupt`, `user.tool_confirmation`,
//! `user.custom_tool_result` onto herm's message, interrupt and steering responses) and the
//! list, which is the projection of the thread's log ([`crate::project`]).

use crate::project::{Outcome, Projector};
use crate::sessions::Place;
use crate::wire::{self, object};
use crate::{Error, Facade, PageQuery, Result, invalid, project, unsupported};
use herm_engine::steering::Reply;
use herm_types::attachment::{AttachmentInput, AttachmentKind};
use herm_types::config::limits;
use herm_types::event::RequestKind;
use herm_types::proactive::GoalCreate;
use herm_types::*;
use serde_json::{Value, json};

const MAX_EVENTS: usize = 20;
/// A defined outcome's default and largest number of attempts.
const DEFAULT_ITERATIONS: u32 = 3;
const MAX_ITERATIONS: u32 = 20;
/// The pause between an outcome's attempts.
const OUTCOME_PAUSE: &str = "1s";
const GOALS_PAGE: usize = 100;
/// Events read after a send to find its echo (it is among the first few).
const RECEIPT_WINDOW: usize = 50;

/// A parsed `user.message`: its text, its attachments, and which of them come from uploaded
/// files (position, file id) and still need their bytes.
pub(crate) struct Parsed {
    text: String,
    attachments: Vec<AttachmentInput>,
    files: Vec<(usize, String)>,
}

/// A `user.message`: its text (text blocks, and documents given as plain text, joined) and
/// its images and documents as herm attachments (base64, a URL, or an uploaded file).
pub(crate) fn parse_message(e: &Value) -> Result<Parsed> {
    object(e, &["type", "content"])?;
    let blocks =
        e.get("content").and_then(Value::as_array).ok_or_else(|| invalid("`content` must be an array of blocks"))?;
    let mut parts: Vec<String> = Vec::new();
    let mut attachments = Vec::new();
    let mut files = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                object(b, &["type", "text"])?;
                parts.push(
                    b.get("text").and_then(Value::as_str).ok_or_else(|| invalid("a text block needs `text`"))?.into(),
                )
            }
            Some(t @ ("image" | "document")) => {
                let kind = if t == "image" { AttachmentKind::Image } else { AttachmentKind::Document };
                object(b, if t == "image" { &["type", "source"] } else { &["type", "source", "title"] })?;
                let title = b.get("title").and_then(Value::as_str).map(str::to_owned);
                let src = b.get("source").ok_or_else(|| invalid(format!("an {t} block needs a `source`")))?;
                let field = |k: &str| src.get(k).and_then(Value::as_str).map(str::to_owned);
                let input =
                    |url, data, media_type| AttachmentInput { kind, url, data, media_type, name: title.clone() };
                match src.get("type").and_then(Value::as_str) {
                    Some("base64") => {
                        object(src, &["type", "media_type", "data"])?;
                        attachments.push(input(None, field("data"), field("media_type")));
                    }
                    Some("url") => {
                        object(src, &["type", "url"])?;
                        attachments.push(input(field("url"), None, None));
                    }
                    Some("text") if kind == AttachmentKind::Document => {
                        object(src, &["type", "media_type", "data"])?;
                        let text = field("data").ok_or_else(|| invalid("a text document needs `data`"))?;
                        parts.push(match &title {
                            Some(title) => format!("{title}\n\n{text}"),
                            None => text,
                        });
                    }
                    Some("file") => {
                        object(src, &["type", "file_id"])?;
                        let id = field("file_id").ok_or_else(|| invalid("a `file` source needs `file_id`"))?;
                        files.push((attachments.len(), id));
                        attachments.push(input(None, None, None));
                    }
                    _ => {
                        return Err(invalid(format!(
                            "an {t} block's `source.type` must be `base64`, `url`, `file` or (for documents) `text`"
                        )));
                    }
                }
            }
            Some(t @ ("search_result" | "redacted")) => {
                return Err(unsupported(format!("`{t}` content blocks are not supported by herm's CMA API")));
            }
            _ => return Err(invalid("content blocks need a known `type`: `text`, `image` or `document`")),
        }
    }
    let text = parts.join("\n\n");
    if text.trim().is_empty() && attachments.is_empty() {
        return Err(invalid("the message has no text, image or document"));
    }
    if text.len() > limits::MAX_MESSAGE {
        return Err(invalid(format!("the message is longer than {} bytes", limits::MAX_MESSAGE)));
    }
    Ok(Parsed { text, attachments, files })
}

impl Facade {
    /// A `user.message`'s text and attachments, with the bytes of the uploaded files it
    /// names, checked as herm checks a message's attachments.
    pub(crate) async fn message(&self, e: &Value) -> Result<(String, Vec<AttachmentInput>)> {
        let mut p = parse_message(e)?;
        for (i, id) in &p.files {
            let (f, bytes) = self.file_content(id).await.map_err(crate::missing(format!("file `{id}`")))?;
            let a = &mut p.attachments[*i];
            a.data = Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes));
            a.media_type = f["mime_type"].as_str().map(str::to_owned);
            a.name = a.name.take().or_else(|| f["filename"].as_str().map(str::to_owned));
        }
        herm_types::attachment::check_all(&p.attachments).map_err(invalid)?;
        Ok((p.text, p.attachments))
    }
}

/// A `user.define_outcome`: its description, its rubric's text and its attempts.
pub(crate) fn outcome(e: &Value) -> Result<(String, String, u32)> {
    object(e, &["type", "description", "rubric", "max_iterations"])?;
    let description = e.get("description").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if description.is_empty() || description.len() > 20_000 {
        return Err(invalid("`description` is 1-20000 characters"));
    }
    let rubric = match e.get("rubric").and_then(|r| r.get("type")).and_then(Value::as_str) {
        Some("text") => e["rubric"].get("content").and_then(Value::as_str).map(str::trim).unwrap_or_default(),
        Some("file") => {
            return Err(unsupported("a `file` rubric is not supported by herm yet; give the rubric as text"));
        }
        _ => return Err(invalid("`rubric` must be `{type: text, content}`")),
    };
    if rubric.is_empty() || rubric.len() > 20_000 {
        return Err(invalid("`rubric.content` is 1-20000 characters"));
    }
    let max = match e.get("max_iterations") {
        None | Some(Value::Null) => DEFAULT_ITERATIONS,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_ITERATIONS as u64).contains(n))
            .ok_or_else(|| invalid(format!("`max_iterations` is 1-{MAX_ITERATIONS}")))? as u32,
    };
    Ok((description.to_owned(), rubric.to_owned(), max))
}

pub(crate) fn outcome_of(g: &herm_types::proactive::Goal) -> Outcome {
    Outcome {
        description: g.objective.clone(),
        rubric: g.done_criteria.clone().unwrap_or_default(),
        max_iterations: g.max_runs,
    }
}

/// The request behind a tool-use event id (or a herm tool_use id): its id and kind.
fn request_for(log: &[Event], use_id: &str) -> Option<(RequestId, RequestKind)> {
    log.iter().rev().find_map(|e| match &e.kind {
        EventKind::SteeringRequest { request_id, kind, tool_use_id, .. }
            if e.id.as_str() == use_id || tool_use_id.as_deref() == Some(use_id) =>
        {
            Some((request_id.clone(), *kind))
        }
        _ => None,
    })
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::Array(blocks)) => {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n\n")
        }
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

impl Facade {
    /// Applies the events in order; each receipt is the event as the list shows it.
    pub async fn send_events(&self, session: &str, body: &Value) -> Result<Value> {
        object(body, &["events"])?;
        let events =
            body.get("events").and_then(Value::as_array).ok_or_else(|| invalid("`events` must be an array"))?;
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(invalid(format!("`events` must hold 1-{MAX_EVENTS} events")));
        }
        let place = self.place_of(session, true).await?;
        // Checked in full before anything is applied.
        for e in events {
            match e.get("type").and_then(Value::as_str) {
                Some("user.message") => {
                    self.message(e).await?;
                }
                Some("user.interrupt") => {
                    object(e, &["type", "session_thread_id"])?;
                    if e.get("session_thread_id").is_some_and(|t| !t.is_null()) {
                        return Err(unsupported("`session_thread_id`: multiagent threads are not supported by herm"));
                    }
                }
                Some("user.tool_confirmation") => {
                    object(e, &["type", "tool_use_id", "result", "deny_message"])?;
                    if e.get("tool_use_id").and_then(Value::as_str).is_none() {
                        return Err(invalid("`tool_use_id` is required"));
                    }
                    if !matches!(e.get("result").and_then(Value::as_str), Some("allow" | "deny")) {
                        return Err(invalid("`result` must be `allow` or `deny`"));
                    }
                    match e.get("deny_message") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(m)) if m.len() <= limits::MAX_MESSAGE => {}
                        Some(_) => {
                            return Err(invalid(format!(
                                "`deny_message` is a string of at most {} bytes",
                                limits::MAX_MESSAGE
                            )));
                        }
                    }
                }
                Some("user.custom_tool_result") => {
                    object(e, &["type", "custom_tool_use_id", "content", "is_error"])?;
                    if e.get("custom_tool_use_id").and_then(Value::as_str).is_none() {
                        return Err(invalid("`custom_tool_use_id` is required"));
                    }
                    if text_of(e.get("content")).len() > limits::MAX_MESSAGE {
                        return Err(invalid(format!("`content` is at most {} bytes of text", limits::MAX_MESSAGE)));
                    }
                }
                Some("user.tool_result") => {
                    return Err(unsupported(
                        "`user.tool_result` is for self-hosted environments, which herm does not have",
                    ));
                }
                Some("user.define_outcome") => {
                    outcome(e)?;
                }
                Some("system.message") => return Err(unsupported("`system.message` events are not supported by herm")),
                _ => return Err(invalid("each event needs a known `type`")),
            }
        }
        let mut receipts = Vec::new();
        for e in events {
            let before = self.engine.thread(&place.thread).await?.last_sequence;
            let ty = e.get("type").and_then(Value::as_str).unwrap_or_default();
            match ty {
                "user.message" => {
                    let d = self.ready(&place).await?;
                    let (text, attachments) = self.message(e).await?;
                    self.engine.submit_message(&d, &place.thread, text, attachments).await?;
                }
                "user.interrupt" => match self.engine.interrupt(&place.thread, None).await {
                    Ok(_) => {}
                    // Nothing running: the session is idle already.
                    Err(herm_engine::Error::NoActiveRun) => {
                        receipts.push(json!({"id": wire::new_id("sevt_"), "type": ty, "processed_at": self.now()}));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                "user.tool_confirmation" => {
                    let log = self.engine.thread_log(&place.thread).await?;
                    let use_id = e["tool_use_id"].as_str().unwrap_or_default();
                    let (req, _) = request_for(&log, use_id)
                        .filter(|(_, k)| *k == RequestKind::Approval)
                        .ok_or_else(|| invalid(format!("no tool use `{use_id}` waits for a confirmation")))?;
                    let reply = if e["result"] == "allow" {
                        Reply::Allow { input: None }
                    } else {
                        Reply::Deny { message: e.get("deny_message").and_then(Value::as_str).map(str::to_owned) }
                    };
                    self.respond(&place.thread, &req, reply).await?;
                }
                "user.define_outcome" => {
                    let (description, rubric, max_iterations) = outcome(e)?;
                    let goal = GoalCreate {
                        objective: description,
                        done_criteria: Some(rubric),
                        thread_id: Some(place.thread.to_string()),
                        max_runs: Some(max_iterations),
                        max_cost_usd: None,
                        check_every: Some(OUTCOME_PAUSE.into()),
                        deadline_at: None,
                    };
                    self.engine.create_goal(&place.deployment, goal).await?;
                }
                _ => {
                    let log = self.engine.thread_log(&place.thread).await?;
                    let use_id = e["custom_tool_use_id"].as_str().unwrap_or_default();
                    let (req, _) = request_for(&log, use_id)
                        .filter(|(_, k)| *k == RequestKind::Question)
                        .ok_or_else(|| invalid(format!("no custom tool use `{use_id}` waits for a result")))?;
                    let mut answer = text_of(e.get("content"));
                    if e.get("is_error") == Some(&Value::Bool(true)) {
                        answer = format!("(the user's client reported an error) {answer}");
                    }
                    if answer.trim().is_empty() {
                        return Err(invalid("`content` must hold the answer's text"));
                    }
                    self.respond(&place.thread, &req, Reply::Answer(answer)).await?;
                }
            }
            receipts.push(self.receipt(&place, before, ty).await?);
        }
        Ok(json!({"data": receipts}))
    }

    async fn respond(&self, thread: &ThreadId, req: &RequestId, reply: Reply) -> Result<()> {
        match self.engine.respond(thread, req, reply).await {
            Err(herm_engine::Error::NotPending) => Err(Error::Conflict(
                "that tool use is not waiting any more (answered already, or its turn ended)".into(),
            )),
            other => Ok(other.map(|_| ())?),
        }
    }

    /// The logged echo of what was just sent: the first event of its type after `before`.
    /// A message or an interrupt needs no context, so only the new events are read; an
    /// answer's echo names the tool use it answers, and an outcome's what it was defined as,
    /// so the whole log is folded.
    async fn receipt(&self, place: &Place, before: i64, ty: &str) -> Result<Value> {
        let (log, from, p) = if ty == "user.message" || ty == "user.interrupt" {
            (self.engine.thread_events(&place.thread, before, RECEIPT_WINDOW).await?, 0, Projector::default())
        } else {
            (self.engine.thread_log(&place.thread).await?, before, self.projector(place).await?)
        };
        let (all, _) = project::fold(&log, p);
        let fresh: std::collections::HashSet<&str> =
            log.iter().filter(|e| e.sequence.0 > from).map(|e| e.id.as_str()).collect();
        let found = all.into_iter().find(|v| {
            v["type"] == ty && v["id"].as_str().is_some_and(|i| fresh.contains(i.trim_end_matches("_start")))
        });
        let mut found = found.into_iter().collect::<Vec<_>>();
        self.with_media(&place.deployment, &mut found).await;
        Ok(found.pop().unwrap_or_else(|| json!({"id": wire::new_id("sevt_"), "type": ty, "processed_at": null})))
    }

    /// Puts the bytes of the images and documents sent as base64 back into the echoes of
    /// user messages (the projection names them by herm attachment id; the log keeps
    /// references only). One that cannot be read stays a reference.
    pub(crate) async fn with_media(&self, dep: &DeploymentId, events: &mut [Value]) {
        use base64::Engine as _;
        for ev in events.iter_mut().filter(|v| v["type"] == "user.message") {
            for block in ev["content"].as_array_mut().into_iter().flatten() {
                let Some(id) = block["source"]["attachment_id"].as_str().and_then(|i| AttachmentId::parse(i).ok())
                else {
                    continue;
                };
                match self.engine.attachment_content(dep, &id).await {
                    Ok((a, bytes)) => {
                        block["source"] = json!({"type": "base64", "media_type": a.media_type,
                            "data": base64::engine::general_purpose::STANDARD.encode(bytes)});
                    }
                    Err(e) => tracing::warn!(attachment = %id, error = %e, "a message's attachment could not be read"),
                }
            }
        }
    }

    /// A projector that knows the outcomes (herm goals) defined on the session's thread.
    pub(crate) async fn projector(&self, place: &Place) -> Result<Projector> {
        let mut out = std::collections::HashMap::new();
        let mut before = None;
        loop {
            let page = self.engine.list_goals(&place.deployment, before.clone(), GOALS_PAGE).await?;
            let n = page.len();
            before = page.last().map(|g| g.goal_id.clone());
            for g in page.into_iter().filter(|g| g.thread_id == place.thread) {
                out.insert(g.goal_id.to_string(), outcome_of(&g));
            }
            if n < GOALS_PAGE {
                return Ok(Projector::with_outcomes(out));
            }
        }
    }

    /// The session's events, oldest first (or newest with `desc`), filtered by type and time.
    pub async fn list_events(&self, session: &str, q: &PageQuery, f: &EventFilter) -> Result<wire::Page> {
        let place = self.place_of(session, false).await?;
        let limit = q.limit()?;
        let log = self.engine.thread_log(&place.thread).await?;
        let (mut all, _) = project::fold(&log, self.projector(&place).await?);
        match f.order.as_deref() {
            None | Some("asc") => {}
            Some("desc") => all.reverse(),
            Some(_) => return Err(invalid("`order` must be `asc` or `desc`")),
        }
        let start = match q.page.as_deref() {
            None | Some("") => 0,
            Some(after) => all
                .iter()
                .position(|v| v["id"] == after)
                .map(|i| i + 1)
                .ok_or_else(|| invalid("`page` is not a page token of this list"))?,
        };
        let mut data = Vec::new();
        let mut last = None;
        for (i, v) in all.iter().enumerate().skip(start) {
            if data.len() == limit {
                break;
            }
            last = Some(i);
            if (f.types.is_empty() || f.types.iter().any(|t| v["type"] == t.as_str()))
                && f.created.holds(&v["processed_at"])
            {
                data.push(v.clone());
            }
        }
        self.with_media(&place.deployment, &mut data).await;
        let next_page = match last {
            Some(i) if i + 1 < all.len() && data.len() == limit => all[i]["id"].as_str().map(str::to_owned),
            _ => None,
        };
        Ok(wire::Page { data, next_page })
    }
}

/// `GET /v1/sessions/{id}/events` filters.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub order: Option<String>,
    pub types: Vec<String>,
    pub created: crate::agents::Range,
}
