//! The compaction step: before a model call whose request would pass the model's threshold
//! (or after the provider said the prompt is too long), the older part of the conversation
//! is summarised, stage by stage, each stage a `compaction` event (so a crash loses at most
//! the stage in flight and resume and later runs use the summary). The plan is the pure
//! [`crate::compaction`].

use super::{Appended, Driver, Flow};
use crate::Result;
use crate::compaction::{self, SUMMARY_SYSTEM};
use crate::history;
use crate::providers::ResolvedModel;
use herm_llm::{Message, ModelRequest, call_with_retry};
use herm_types::*;

/// Why compaction runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// The estimate passed the threshold.
    Threshold,
    /// The provider refused the request as too long.
    Refused,
}

/// Longest summary asked for (tokens).
const SUMMARY_MAX_TOKENS: u32 = 4096;

impl Driver<'_> {
    /// Compacts if `why` calls for it (`conversation_tokens`: the estimate of `req`'s
    /// messages); `Some(flow)` when it acted (fold again and call the
    /// model with the shorter conversation), `None` when nothing needed or could be done.
    pub(super) async fn compact(
        &self,
        run: &RunId,
        resolved: &ResolvedModel,
        key: Option<&str>,
        req: &ModelRequest,
        conversation_tokens: u64,
        why: Why,
    ) -> Result<Option<Flow>> {
        let opts = &self.engine.options().memory;
        let window = resolved.context_window();
        let usable = window.saturating_sub(req.max_tokens as u64);
        let threshold = (usable as f64 * opts.compact_at) as u64;
        let fixed = compaction::fixed_tokens(req);
        let before = fixed + conversation_tokens;
        if why == Why::Threshold && before <= threshold {
            return Ok(None);
        }
        let mut keep = ((window as f64) * opts.keep_recent) as u64;
        keep = keep.min(threshold.saturating_sub(fixed) / 2);
        if why == Why::Refused {
            // Our estimate was wrong for this model: keep far less.
            keep = keep.min(before / 4);
        }
        let turns = self.conversation(run);
        let Some((cut, _)) = compaction::choose_cut(&turns, keep) else { return Ok(None) };
        let stage_tokens = usable.saturating_sub(SUMMARY_MAX_TOKENS as u64).min(threshold);
        let kept_tokens: u64 = turns[cut..].iter().map(|t| t.tokens).sum();
        let redactor = self.engine.secrets().vault_redactor().await?;
        let mut previous: Option<String> = None;
        for stage in compaction::stages(&turns, cut, stage_tokens) {
            let ask = ModelRequest {
                model: resolved.model.clone(),
                system: SUMMARY_SYSTEM.into(),
                messages: vec![std::sync::Arc::new(Message::user(compaction::stage_prompt(
                    previous.as_deref(),
                    &stage.text,
                )))],
                tools: Vec::new(),
                max_tokens: SUMMARY_MAX_TOKENS.min(req.max_tokens),
            };
            let retry = &self.engine.options().retry;
            let (mut on_delta, mut on_retry) = (|_: &str| {}, |_: u32, _: &herm_llm::Error| {});
            let res = tokio::select! {
                _ = self.work.cancelled() => return Ok(Some(Flow::Stop)),
                r = call_with_retry(resolved.client.as_ref(), &ask, key, retry, &mut on_delta, &mut on_retry) => r,
            };
            let resp = match res {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!("the conversation could not be compacted: {}", redactor.redact(&e.message));
                    return self.fail(run, "compaction_failed", msg).await.map(Some);
                }
            };
            let (input_tokens, output_tokens, estimated) = compaction::usage_or_estimate(&ask, &resp);
            let summary = redactor.redact(resp.text.trim());
            let after = fixed + crate::memory::rank::tokens(&summary) + kept_tokens;
            tracing::info!(run = %run, before, after, through = stage.through, "conversation compacted");
            let ev = EventKind::Compaction {
                summary: summary.clone(),
                replaced_through_sequence: stage.through,
                tokens_before: before,
                tokens_after: after,
                model: resolved.model.clone(),
                input_tokens,
                output_tokens,
                cost_usd: resolved.cost(input_tokens, output_tokens),
                estimated,
            };
            match self.try_append(run, vec![NewEvent::new(Some(run.clone()), ev)], vec![]).await? {
                Appended::Written => previous = Some(summary),
                other => return Ok(Some(other.into())),
            }
        }
        Ok(Some(Flow::Continue))
    }

    /// The conversation before `run`'s next model call, compacted, built from
    /// [`Driver::conversation_log`]: for a run that sees the whole thread, only what follows
    /// its settled part is folded (see [`history::Settled`]).
    pub(super) fn conversation(&self, run: &RunId) -> Vec<history::Turn> {
        let log = self.conversation_log(run);
        if self.run_kind(run).is_memory() {
            return history::compacted(history::turns(&log, run), history::latest_compaction(&log));
        }
        let mut settled = self.conversation.lock();
        let turns = history::turns_after(&log, run, &mut settled);
        history::compacted(turns, settled.latest_compaction(&log))
    }

    /// The log a run's conversation is built from: a memory run (observer, dream) sees only
    /// its own run; any other run, the whole thread.
    pub(super) fn conversation_log(&self, run: &RunId) -> std::borrow::Cow<'_, [Event]> {
        if self.run_kind(run).is_memory() {
            self.log.iter().filter(|e| e.run_id.as_ref() == Some(run)).cloned().collect::<Vec<_>>().into()
        } else {
            self.log.as_slice().into()
        }
    }

    /// Whether the run already compacted since its last model call (a second "too long"
    /// after compacting ends the run instead of looping).
    pub(super) fn compacted_since_last_call(&self, run: &RunId) -> bool {
        for e in self.log.iter().rev().filter(|e| e.run_id.as_ref() == Some(run)) {
            match e.kind {
                EventKind::Compaction { .. } => return true,
                EventKind::ModelCall { .. } => return false,
                _ => {}
            }
        }
        false
    }
}
