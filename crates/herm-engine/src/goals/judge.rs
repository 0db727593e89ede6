//! The judge: a separate model call, in a context of its own (not the agent's thread), that
//! grades the agent's claim that a goal is done against its done criteria and answers pass
//! or needs-revision with feedback. The verdict is one `goal_verdict` event marked
//! `goal:<id>:verdict:<run>`, so a claim is judged into the log once; the goal's record
//! follows from that event (again after a crash, from the log).

use crate::{Engine, Error, Result};
use herm_llm::{Message, ModelRequest, call_with_retry};
use herm_store::{Append, GoalRecord, Once};
use herm_types::proactive::*;
use herm_types::*;
use std::fmt::Write as _;

const JUDGE_SYSTEM: &str = "You are a strict, fair judge. An agent claims it has achieved a goal. Decide whether the \
evidence shows the done criteria are met. Answer with one JSON object and nothing else: \
{\"result\": \"pass\" | \"needs_revision\", \"feedback\": \"<one paragraph: what is missing, or why it passes>\"}.";
/// The agent's own words from the goal's thread given to the judge, at most (the latest).
const TRANSCRIPT_CHARS: usize = 12_000;

impl Engine {
    /// Judges the claim made in `run` (once), then records the verdict on the goal.
    pub(crate) async fn judge_claim(&self, g: &GoalRecord, run: &RunId, summary: &str) -> Result<()> {
        let key = format!("goal:{}:verdict:{run}", g.id);
        let verdict = match self.recorded_verdict(g, run, &key).await? {
            Some(v) => v,
            None => {
                let (result, feedback, cost_usd) = self.ask_judge(g, summary).await?;
                let ev = NewEvent::new(
                    Some(run.clone()),
                    EventKind::GoalVerdict { goal_id: g.id.clone(), run_id: run.clone(), result, feedback, cost_usd },
                );
                let mut a = Append::new(g.thread_id.clone(), vec![ev]);
                a.once = Some(Once::Key { key: key.clone(), run_id: Some(run.clone()) });
                match self.store().append(a).await {
                    Ok(_) | Err(herm_store::Error::Duplicate) => {}
                    Err(e) => return Err(e.into()),
                }
                self.recorded_verdict(g, run, &key)
                    .await?
                    .ok_or(Error::Conflict("the verdict was not recorded".into()))?
            }
        };
        let (result, feedback, cost) = verdict;
        let rec = self
            .edit_goal(&g.deployment_id, &g.id, None, |r| {
                if r.state.claim.as_ref().map(|c| &c.0) != Some(run) {
                    return Ok(()); // applied before
                }
                r.state.claim = None;
                r.state.judge_cost_usd += cost;
                match result {
                    Verdict::Pass => {
                        r.status = GoalStatus::Done;
                        r.state.reason = Some(format!("the judge agreed: {feedback}"));
                        r.state.feedback = None;
                    }
                    Verdict::NeedsRevision => r.state.feedback = Some(feedback.clone()),
                }
                Ok(())
            })
            .await?;
        if rec.status == GoalStatus::Done && g.status != GoalStatus::Done {
            self.goal_event(&rec, GoalStatus::Done, rec.state.reason.clone()).await;
        }
        Ok(())
    }

    /// The verdict recorded for `run`'s claim, read from the goal's thread.
    async fn recorded_verdict(&self, g: &GoalRecord, run: &RunId, key: &str) -> Result<Option<(Verdict, String, f64)>> {
        if self.store().once_run(key).await?.is_none() {
            return Ok(None);
        }
        let log = self.store().run_log(&g.thread_id).await?;
        Ok(log.into_iter().rev().find_map(|e| match e.kind {
            EventKind::GoalVerdict { goal_id, run_id, result, feedback, cost_usd }
                if goal_id == g.id && &run_id == run =>
            {
                Some((result, feedback, cost_usd))
            }
            _ => None,
        }))
    }

    /// One model call with the deployment's model: the verdict, its feedback and cost.
    async fn ask_judge(&self, g: &GoalRecord, summary: &str) -> Result<(Verdict, String, f64)> {
        let dep = self.deployment(&g.deployment_id).await?;
        let (_, resolved, key) =
            self.model_access(&dep).await?.map_err(|(code, why)| Error::Conflict(format!("{code}: {why}")))?;
        let log = self.store().run_log(&g.thread_id).await?;
        let req = ModelRequest {
            model: resolved.model.clone(),
            system: JUDGE_SYSTEM.into(),
            messages: vec![std::sync::Arc::new(Message::user(judge_prompt(g, summary, &log)))],
            tools: Vec::new(),
            max_tokens: 1024,
        };
        let redactor = self.secrets().redactor(&dep.spec).await?;
        let mut on_delta = |_: &str| {};
        let mut on_retry =
            |n: u32, e: &herm_llm::Error| tracing::warn!(attempt = n, code = e.code(), "judge call failed; retrying");
        let resp = call_with_retry(
            resolved.client.as_ref(),
            &req,
            key.as_ref().map(|k| k.expose()),
            &self.options().retry,
            &mut on_delta,
            &mut on_retry,
        )
        .await
        .map_err(|e| {
            Error::Unjudged(format!("the judge could not be asked ({}): {}", e.code(), redactor.redact(&e.message)))
        })?;
        let (input, output, _) = crate::compaction::usage_or_estimate(&req, &resp);
        let cost = resolved.cost(input, output);
        let (result, feedback) = read_verdict(&resp.text);
        Ok((result, redactor.redact(&feedback), cost))
    }
}

/// What the judge sees: the goal, the claim, progress notes and the latest of the agent's
/// words and tool results on the goal's thread.
fn judge_prompt(g: &GoalRecord, summary: &str, log: &[Event]) -> String {
    let mut p = format!("Objective: {}\n", g.spec.objective);
    let _ = writeln!(
        p,
        "Done criteria: {}",
        g.spec.done_criteria.as_deref().unwrap_or("(none given: judge by the objective)")
    );
    let _ = writeln!(p, "\nThe agent's claim: {summary}");
    if !g.state.progress_notes.is_empty() {
        p.push_str("\nProgress notes:\n");
        for n in &g.state.progress_notes {
            let _ = writeln!(p, "- {}", n.note);
        }
    }
    let mut transcript = String::new();
    for e in log {
        match &e.kind {
            EventKind::AgentMessage { content } => {
                let _ = writeln!(transcript, "agent: {content}");
            }
            EventKind::ToolResult { tool, result, .. } => {
                let _ = writeln!(transcript, "tool {tool} returned: {result}");
            }
            _ => {}
        }
    }
    let start = transcript.len().saturating_sub(TRANSCRIPT_CHARS);
    let start = (start..transcript.len()).find(|i| transcript.is_char_boundary(*i)).unwrap_or(transcript.len());
    let _ = write!(p, "\nThe latest of the agent's work on the goal's thread:\n{}", &transcript[start..]);
    p
}

/// Reads `{"result", "feedback"}` from the judge's answer; anything else is not a pass.
fn read_verdict(text: &str) -> (Verdict, String) {
    let json = text.find('{').zip(text.rfind('}')).filter(|(a, b)| a < b).map(|(a, b)| &text[a..=b]);
    let parsed = json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
    let result = parsed.as_ref().and_then(|v| v.get("result")).and_then(|r| r.as_str());
    let feedback = parsed.as_ref().and_then(|v| v.get("feedback")).and_then(|f| f.as_str()).unwrap_or_default();
    match result {
        Some("pass") => (Verdict::Pass, feedback.to_owned()),
        Some("needs_revision") => (Verdict::NeedsRevision, feedback.to_owned()),
        _ => (
            Verdict::NeedsRevision,
            format!(
                "the judge's answer could not be read as a verdict: {}",
                text.chars().take(500).collect::<String>()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_strictly() {
        let cases = [
            (r#"{"result": "pass", "feedback": "all criteria met"}"#, Verdict::Pass, "all criteria met"),
            (
                "Sure! ```json\n{\"result\":\"needs_revision\",\"feedback\":\"no approval\"}\n```",
                Verdict::NeedsRevision,
                "no approval",
            ),
            (r#"{"result": "PASS"}"#, Verdict::NeedsRevision, "the judge's answer could not be read"),
            ("looks good to me", Verdict::NeedsRevision, "the judge's answer could not be read"),
        ];
        for (text, want, says) in cases {
            let (v, f) = read_verdict(text);
            assert_eq!(v, want, "{text}");
            assert!(f.starts_with(says), "{text}: {f}");
        }
    }
}
