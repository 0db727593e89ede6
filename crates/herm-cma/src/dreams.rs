//! Dreams: a memory store consolidated with what some sessions taught, by herm's dream (a
//! journaled `dream` run in the store's deployment, with the store's memories, the sessions'
//! transcripts and the caller's instructions in its message, using the model asked for).
//! `create_new` (the default) copies the input store into a new store first and dreams
//! there, leaving the input untouched; `update_existing` dreams in the input store. The
//! dream's status, end, usage and error are its run's; `cancel` interrupts the run. herm
//! runs no session for a dream: `session_id` is null.

use crate::agents::Range;
use crate::wire::{self, new_id, object, string};
use crate::{Error, Facade, PageQuery, Result, invalid, spec};
use herm_engine::memory::dream::Brief;
use herm_store::History;
use herm_types::config::DeploymentPatch;
use herm_types::memory::DreamStatus;
use herm_types::*;
use serde_json::{Value, json};

pub(crate) const KIND: &str = "dream";
const HERM: &str = "_herm";
const MAX_SESSIONS: usize = 100;
const MAX_INSTRUCTIONS: usize = 4096;

/// CMA's status for herm's (pure).
fn status(s: DreamStatus) -> &'static str {
    match s {
        DreamStatus::Pending => "pending",
        DreamStatus::Running => "running",
        DreamStatus::Completed => "completed",
        DreamStatus::Failed => "failed",
        DreamStatus::Cancelled => "canceled",
    }
}

/// The request's inputs: exactly one memory store and one list of 1-100 distinct sessions
/// (shown sorted), checked for shape (pure).
fn inputs(v: Option<&Value>) -> Result<(String, Vec<String>)> {
    let list =
        v.and_then(Value::as_array).ok_or_else(|| invalid("`inputs` is required: a memory store and sessions"))?;
    let (mut store, mut sessions) = (None, None);
    for i in list {
        match i.get("type").and_then(Value::as_str) {
            Some("memory_store") if store.is_none() => {
                object(i, &["type", "memory_store_id"])?;
                store = Some(string(i, "memory_store_id", 256, true)?.unwrap_or_default());
            }
            Some("sessions") if sessions.is_none() => {
                object(i, &["type", "session_ids"])?;
                let ids: Vec<String> = i
                    .get("session_ids")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("`session_ids` must be an array of session ids"))?
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| invalid("`session_ids` must hold strings")))
                    .collect::<Result<_>>()?;
                let mut sorted = ids.clone();
                sorted.sort();
                sorted.dedup();
                if sorted.len() != ids.len() || !(1..=MAX_SESSIONS).contains(&ids.len()) {
                    return Err(invalid(format!("`session_ids` holds 1 to {MAX_SESSIONS} distinct ids")));
                }
                sessions = Some(sorted);
            }
            Some("memory_store" | "sessions") => {
                return Err(invalid("`inputs` holds exactly one `memory_store` and one `sessions` entry"));
            }
            _ => return Err(invalid("an input's `type` must be `memory_store` or `sessions`")),
        }
    }
    match (store, sessions) {
        (Some(s), Some(ids)) => Ok((s, ids)),
        _ => Err(invalid("`inputs` holds exactly one `memory_store` and one `sessions` entry")),
    }
}

impl Facade {
    pub async fn create_dream(&self, body: &Value) -> Result<Value> {
        object(body, &["inputs", "model", "instructions", "output_behavior"])?;
        let (store_id, session_ids) = inputs(body.get("inputs"))?;
        let model = crate::agents::model(body.get("model").ok_or_else(|| invalid("`model` is required"))?)?;
        let instructions = string(body, "instructions", MAX_INSTRUCTIONS, false)?;
        if instructions.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return Err(invalid("`instructions` is 1 to 4096 characters"));
        }
        let update_existing = match body.get("output_behavior") {
            None | Some(Value::Null) => false,
            Some(o) => match o.get("type").and_then(Value::as_str) {
                Some("create_new") => {
                    object(o, &["type"])?;
                    false
                }
                Some("update_existing") => {
                    object(o, &["type", "memory_store_id"])?;
                    if o.get("memory_store_id").and_then(Value::as_str) != Some(store_id.as_str()) {
                        return Err(invalid("`update_existing` names the input memory store"));
                    }
                    true
                }
                _ => return Err(invalid("`output_behavior.type` must be `create_new` or `update_existing`")),
            },
        };
        let (store, input_dep) = self
            .memory_store_and_deployment(&store_id)
            .await
            .map_err(crate::missing(format!("memory store `{store_id}`")))?;
        if !store["archived_at"].is_null() {
            return Err(invalid(format!("memory store `{store_id}` is archived")));
        }
        let mut conversations = String::new();
        for id in &session_ids {
            let place = self.place_of(id, false).await.map_err(crate::missing(format!("session `{id}`")))?;
            let log = self.engine.thread_log(&place.thread).await?;
            conversations
                .push_str(&format!("\n### Session {id}\n{}\n", herm_engine::memory::observer::transcript(&log)));
        }
        let (output_id, output_dep) = if update_existing {
            (store_id.clone(), input_dep.clone())
        } else {
            let name = format!("{} (dreamed)", store["name"].as_str().unwrap_or("memory store"));
            let made = self
                .create_memory_store(&json!({"name": name.chars().take(256).collect::<String>(),
                                             "description": store["description"]}))
                .await?;
            let id = made["id"].as_str().unwrap_or_default().to_owned();
            (id.clone(), self.memory_store_and_deployment(&id).await?.1)
        };
        let brief = Brief { instructions: instructions.clone(), conversations: Some(conversations) };
        let from = (!update_existing).then_some(&input_dep);
        let dream = match self.start_in(&output_dep, from, &model, &brief).await {
            Ok(d) => d,
            Err(e) => {
                // A store made for this dream is not left behind.
                if !update_existing && let Err(gone) = self.delete_memory_store(&output_id).await {
                    tracing::warn!(store = %output_id, error = %gone, "a failed dream's new store was not removed");
                }
                return Err(match e {
                    Error::Engine(herm_engine::Error::Conflict(_)) => {
                        Error::Conflict(format!("memory store `{output_id}` is dreaming already"))
                    }
                    e => e,
                });
            }
        };
        let id = new_id("dream_");
        let d = json!({
            "id": id, "type": "dream", "inputs": [
                {"type": "memory_store", "memory_store_id": store_id},
                {"type": "sessions", "session_ids": session_ids},
            ],
            "model": model, "instructions": instructions,
            "output_behavior": if update_existing { json!({"type": "update_existing", "memory_store_id": store_id}) } else { json!({"type": "create_new"}) },
            "outputs": [{"type": "memory_store", "memory_store_id": output_id}],
            "session_id": null, "created_at": self.now(), "archived_at": null,
            HERM: {"deployment_id": output_dep.as_str(), "dream_id": dream.dream_id.as_str()},
        });
        self.put(KIND, &id, 1, d.clone(), History::Drop).await?;
        self.shown_dream(d).await
    }

    /// Starts the dream in the output store's deployment (after copying `from`'s memories
    /// into it), with the model asked for.
    async fn start_in(
        &self,
        output: &DeploymentId,
        from: Option<&DeploymentId>,
        model: &Value,
        brief: &Brief,
    ) -> Result<herm_types::memory::Dream> {
        if let Some(from) = from {
            self.copy_memories(from, output).await?;
        }
        let model_ref = spec::model_ref(model["id"].as_str().unwrap_or_default(), &self.options.default_provider);
        let patch = DeploymentPatch { model: Some(model_ref), ..DeploymentPatch::default() };
        self.engine.patch_deployment(output, patch, None).await?;
        Ok(self.engine.start_dream_with(output, brief).await?)
    }

    /// The dream as it stands: its run's status, end, usage and error.
    async fn shown_dream(&self, mut d: Value) -> Result<Value> {
        let h = d[HERM].clone();
        let dep = h["deployment_id"].as_str().and_then(|s| DeploymentId::parse(s).ok());
        let herm_id = h["dream_id"].as_str().and_then(|s| DreamId::parse(s).ok());
        let (mut st, mut ended, mut usage, mut error) = ("failed", Value::Null, Usage::default(), Value::Null);
        if let (Some(dep), Some(herm_id)) = (dep, herm_id) {
            match self.engine.get_dream(&dep, &herm_id).await {
                Ok(dream) => {
                    st = status(dream.status);
                    if let Some(run) = dream.run_id
                        && let Ok(r) = self.engine.run(&dep, &run).await
                    {
                        ended = r.ended_at.map(wire::rfc3339).map(Value::from).unwrap_or(Value::Null);
                        usage = r.usage;
                        if st == "failed" {
                            error = match r.error {
                                Some(e) => json!({"type": e.code, "message": e.message}),
                                None => json!({"type": "internal_error", "message": "the dream failed"}),
                            };
                        }
                    }
                }
                Err(herm_engine::Error::NotFound(_)) => {
                    error =
                        json!({"type": "memory_store_not_found", "message": "the dream's memory store was deleted"});
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(m) = d.as_object_mut() {
            m.remove(HERM);
        }
        d["status"] = json!(st);
        d["ended_at"] = ended;
        d["error"] = error;
        d["usage"] = json!({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
        Ok(d)
    }

    pub async fn dream(&self, id: &str) -> Result<Value> {
        self.shown_dream(self.doc(KIND, id, None).await?.body).await
    }

    pub async fn list_dreams(
        &self,
        q: &PageQuery,
        include_archived: bool,
        statuses: &[String],
        created: &Range,
    ) -> Result<wire::Page> {
        let (docs, next_page) = self
            .doc_page(KIND, q, true, |d| {
                (include_archived || d["archived_at"].is_null()) && created.holds(&d["created_at"])
            })
            .await?;
        let mut data = Vec::new();
        for d in docs {
            let d = self.shown_dream(d).await?;
            if statuses.is_empty() || statuses.iter().any(|s| d["status"] == s.as_str()) {
                data.push(d);
            }
        }
        Ok(wire::Page { data, next_page })
    }

    /// Interrupts the dream's run; what it changed so far stays (as versions).
    pub async fn cancel_dream(&self, id: &str) -> Result<Value> {
        let d = self.doc(KIND, id, None).await?.body;
        let shown = self.shown_dream(d.clone()).await?;
        match shown["status"].as_str() {
            Some("canceled") => return Ok(shown),
            Some("completed" | "failed") => {
                return Err(Error::Conflict(format!(
                    "the dream is {} already",
                    shown["status"].as_str().unwrap_or_default()
                )));
            }
            _ => {}
        }
        let dep =
            d[HERM]["deployment_id"].as_str().and_then(|s| DeploymentId::parse(s).ok()).ok_or(Error::NotFound(KIND))?;
        let herm_id = d[HERM]["dream_id"].as_str().and_then(|s| DreamId::parse(s).ok()).ok_or(Error::NotFound(KIND))?;
        if let Some(run) = self.engine.get_dream(&dep, &herm_id).await?.run_id {
            let r = self.engine.run(&dep, &run).await?;
            match self.engine.interrupt(&r.thread_id, Some("the dream was canceled".into())).await {
                Ok(_) | Err(herm_engine::Error::NoActiveRun) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.dream(id).await
    }

    pub async fn archive_dream(&self, id: &str) -> Result<Value> {
        let cur = self.doc(KIND, id, None).await?;
        let d = self.archive_doc(cur, History::Drop).await?;
        self.shown_dream(d).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_one_store_and_distinct_sessions() {
        let store = json!({"type": "memory_store", "memory_store_id": "memstore_1"});
        let sessions = |ids: Value| json!({"type": "sessions", "session_ids": ids});
        let ok = inputs(Some(&json!([store, sessions(json!(["sesn_b", "sesn_a"]))]))).unwrap();
        assert_eq!(ok, ("memstore_1".to_owned(), vec!["sesn_a".to_owned(), "sesn_b".to_owned()]));
        let refused = [
            json!([store]),
            json!([sessions(json!(["sesn_a"]))]),
            json!([store, store, sessions(json!(["sesn_a"]))]),
            json!([store, sessions(json!([]))]),
            json!([store, sessions(json!(["sesn_a", "sesn_a"]))]),
            json!([store, {"type": "files"}]),
        ];
        for r in refused {
            assert!(inputs(Some(&r)).is_err(), "{r}");
        }
        assert!(inputs(None).is_err());
        assert_eq!(status(DreamStatus::Cancelled), "canceled");
    }
}
