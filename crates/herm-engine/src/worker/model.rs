//! A model step: which model and key (a configuration problem ends the run with a stable
//! code), the request (system prompt with the skills' descriptions, the history, the tools on
//! offer), the streamed call (tokens published live, redacted), and the response turned
//! into records by [`records::after_model`]: the calls answered inline first, then the next
//! free tool call chained into the same commit.

use super::compact::Why;
use super::{Appended, Driver, Flow};
use crate::Result;
use crate::machine::records;
use crate::providers::ResolvedModel;
use crate::tools::ToolSet;
use herm_llm::{ModelRequest, ToolSpec, call_with_retry};
use herm_store::DeploymentRecord;
use herm_store::vault::SecretValue;
use herm_types::event::{EphemeralFrame, LiveFrame, RequestedToolCall};
use herm_types::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Why a run cannot call its model: a stable code and a message for the run's error.
struct Unconfigured(&'static str, String);

impl Driver<'_> {
    pub(super) async fn call_model(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        outages: Vec<(String, String)>,
    ) -> Result<Flow> {
        let (model, resolved, api_key) = match self.model_for(dep).await? {
            Ok(m) => m,
            Err(Unconfigured(code, message)) => return self.fail(run, code, message).await,
        };
        let kind = self.run_kind(run);
        if kind == RunKind::Dream && self.engine.dream_must_yield(&dep.id).await {
            return self.yield_dream(run, dep).await;
        }
        let seen = self.log.last().map(|e| e.sequence.0).unwrap_or(0);
        let (req, conversation_tokens) = self.request(run, dep, tools, &resolved).await;
        let key = api_key.as_ref().map(|k| k.expose());
        if let Some(flow) = self.compact(run, &resolved, key, &req, conversation_tokens, Why::Threshold).await? {
            return Ok(flow);
        }
        let redactor = self.redactor(dep).await?;
        // The message this call writes has its id now, so live tokens can name it.
        let message_id = EventId::new();
        let mut on_delta = self.token_publisher(run, dep, redactor.clone(), message_id.clone());
        let mut on_retry =
            |n: u32, e: &herm_llm::Error| tracing::warn!(attempt = n, code = e.code(), "model call failed; retrying");
        let started = Instant::now();
        let retry = &self.engine.options().retry;
        let res = tokio::select! {
            _ = self.work.cancelled() => return Ok(Flow::Stop),
            r = call_with_retry(resolved.client.as_ref(), &req, key, retry, &mut on_delta, &mut on_retry) => r,
        };
        let resp = match res {
            Ok(r) => r,
            // Too long for the model: compact and try once more.
            Err(e) if e.kind == herm_llm::ErrorKind::ContextTooLong && !self.compacted_since_last_call(run) => {
                match self.compact(run, &resolved, key, &req, conversation_tokens, Why::Refused).await? {
                    Some(flow) => return Ok(flow),
                    None => return self.fail(run, e.code(), redactor.redact(&e.message)).await,
                }
            }
            Err(e) => return self.fail(run, e.code(), redactor.redact(&e.message)).await,
        };
        let tool_calls: Vec<RequestedToolCall> = resp
            .tool_calls
            .iter()
            .map(|c| RequestedToolCall {
                tool_use_id: c.tool_use_id.clone(),
                tool: c.tool.clone(),
                arguments: redactor.redact_json(&c.arguments),
            })
            .collect();
        let (input_tokens, output_tokens, estimated) = crate::compaction::usage_or_estimate(&req, &resp);
        let call = EventKind::ModelCall {
            model,
            input_tokens,
            output_tokens,
            cost_usd: resolved.cost(input_tokens, output_tokens),
            duration_ms: started.elapsed().as_millis() as u64,
            tool_calls: tool_calls.clone(),
            stop_reason: resp.stop_reason.clone(),
            context_sequence: Some(seen),
            estimated,
        };
        let outages = outages.into_iter().map(|(server, why)| (server, redactor.redact(&why))).collect();
        let mut rest: VecDeque<RequestedToolCall> = tool_calls.into();
        let then = self.answer_inline(run, dep, tools, &mut rest).await?;
        let step = records::after_model(&self.log, run, outages, redactor.redact(&resp.text), call, then, tools);
        let events = step
            .records
            .into_iter()
            .map(|k| {
                let mut e = NewEvent::new(Some(run.clone()), k);
                if matches!(e.kind, EventKind::AgentMessage { .. }) {
                    e.id = message_id.clone();
                }
                e
            })
            .collect();
        let Some(first) = step.chained else {
            // No call, or one a person must see first: the next fold asks.
            return self.append(run, events, vec![]).await;
        };
        match self.try_append(run, events, vec![]).await? {
            Appended::Written => self.run_chain(run, dep, tools, first, rest).await,
            other => Ok(other.into()),
        }
    }

    /// The deployment's model, client and key (see [`crate::Engine::model_access`]).
    async fn model_for(
        &self,
        dep: &DeploymentRecord,
    ) -> Result<Result<(String, ResolvedModel, Option<SecretValue>), Unconfigured>> {
        Ok(self.engine.model_access(dep).await?.map_err(|(code, why)| Unconfigured(code, why)))
    }

    /// The request: system prompt, the conversation from the log (its media loaded), the
    /// visible tools; and the conversation's estimated tokens.
    async fn request(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        tools: &ToolSet,
        resolved: &ResolvedModel,
    ) -> (ModelRequest, u64) {
        let turns = self.conversation(run);
        let (mut tokens, mut media) = (0, false);
        let mut messages: Vec<Arc<herm_llm::Message>> = Vec::with_capacity(turns.len());
        for t in turns {
            tokens += t.tokens;
            media |= t.media;
            messages.push(t.message);
        }
        if media {
            self.engine.load_media(&dep.id, &mut messages, resolved).await;
        }
        let req = ModelRequest {
            model: resolved.model.clone(),
            system: self.system_prompt(run, dep).await,
            messages,
            tools: tools
                .visible()
                .map(|t| ToolSpec {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    input_schema: t.input_schema.clone(),
                })
                .collect(),
            max_tokens: self.max_output_tokens(dep, resolved),
        };
        (req, tokens)
    }

    /// The most one call may write: the deployment's limit, else the model's, else the
    /// server's default.
    fn max_output_tokens(&self, dep: &DeploymentRecord, resolved: &ResolvedModel) -> u32 {
        dep.spec
            .limits
            .max_output_tokens
            .or(resolved.price.max_output_tokens)
            .unwrap_or(self.engine.options().max_tokens)
    }

    /// Publishes each streamed text fragment, redacted, as a live `token` frame naming the
    /// message it builds.
    fn token_publisher(
        &self,
        run: &RunId,
        dep: &DeploymentRecord,
        redactor: Arc<crate::redact::Redactor>,
        message_id: EventId,
    ) -> impl FnMut(&str) + Send + use<> {
        let (bus, dep_id, thread, run_id) =
            (self.engine.bus().clone(), dep.id.clone(), self.thread.clone(), run.clone());
        move |d: &str| {
            let frame = EphemeralFrame {
                deployment_id: dep_id.clone(),
                thread_id: thread.clone(),
                run_id: Some(run_id.clone()),
                kind: EventKind::Token { delta: redactor.redact(d), message_id: Some(message_id.clone()) },
            };
            bus.publish(&dep_id, LiveFrame::Ephemeral(Arc::new(frame)));
        }
    }

    /// The deployment's system prompt followed by its skills' names and descriptions; the
    /// bodies are loaded on demand with `load_skill`. Built once per run.
    async fn system_prompt(&self, run: &RunId, dep: &DeploymentRecord) -> String {
        if let Some(s) = self.system.lock().clone() {
            return s;
        }
        let mut s = self.build_system_prompt(dep).await;
        s.push_str(&self.memory_section(run, dep).await);
        *self.system.lock() = Some(s.clone());
        s
    }

    /// The deployment's memory for this run (none for memory runs, which are given theirs
    /// in their message): the files are synced first if the sandbox is up, then the most
    /// relevant memories to the run's message are loaded within the budget; then those of
    /// the stores it mounts.
    async fn memory_section(&self, run: &RunId, dep: &DeploymentRecord) -> String {
        if self.run_kind(run).is_memory() {
            return String::new();
        }
        let query = self
            .log
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Message { content, .. } if e.run_id.as_ref() == Some(run) => Some(content.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        let mut out = String::new();
        if dep.spec.features.memory {
            self.engine.sync_memory_files_if_up(dep, Some(run)).await;
            match self.engine.memory_prompt(dep, query).await {
                Ok(l) => out = l.section,
                Err(e) => tracing::warn!(deployment = %dep.id, error = %e, "memory could not be loaded for a run"),
            }
        }
        out.push_str(&self.engine.mounts_prompt(dep, query).await);
        out
    }

    /// Other work started in the deployment: the dream ends (`interrupted`, `yielded`) and
    /// its timer looks again later. What it changed so far stays, as versions.
    async fn yield_dream(&self, run: &RunId, dep: &DeploymentRecord) -> Result<Flow> {
        let usage = crate::machine::run_usage(&self.log, run);
        let err = herm_types::event::RunError {
            code: "yielded".into(),
            message: "other work started in the deployment; the dream yields and runs again later".into(),
        };
        let ev = super::status(&self.log, run, RunStatus::Interrupted, Some(err), Some(usage));
        let flow = self.append(run, vec![ev], vec![]).await?;
        self.engine.dream_yielded(&dep.id).await;
        Ok(flow)
    }

    async fn build_system_prompt(&self, dep: &DeploymentRecord) -> String {
        if dep.spec.skills.is_empty() {
            return dep.spec.system_prompt.clone();
        }
        let mut s = format!(
            "{}\n\n## Skills\nLoad a skill with `load_skill` before doing a task it covers.\n",
            dep.spec.system_prompt
        );
        for k in &dep.spec.skills {
            let description = match (&k.description, k.source.as_str()) {
                (Some(d), _) => d.clone(),
                (None, "file") => {
                    match self.engine.skill_text(dep, &k.name).await.and_then(|t| crate::skills::parse(&t)) {
                        Ok(p) => p.description,
                        Err(e) => format!("(unavailable: {e})"),
                    }
                }
                (None, _) => String::new(),
            };
            s.push_str(&format!("- {}: {description}\n", k.name));
        }
        s
    }
}
