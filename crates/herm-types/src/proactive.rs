//! Proactive work: automations (a schedule or a webhook that starts runs) and goals (an
//! objective the runtime keeps working on until a judge agrees it is done). The stored
//! specifications and the wire shapes of their APIs.

use crate::ids::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happens to slots that fell due while herm was down (or behind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Run the most recent missed slot once; record the others as skipped.
    #[default]
    Latest,
    /// Run none of them; record them all as skipped.
    Skip,
    /// Run every missed slot (up to 100; older ones are recorded as skipped).
    All,
}

/// How an automation is stored (its schedule as given and as read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutomationSpec {
    pub name: String,
    pub instructions: String,
    /// The schedule as the caller wrote it; `None` for a webhook-only automation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    pub timezone: String,
    /// `None`: the deployment's default thread; `"new"`: a fresh thread per firing; else a
    /// thread id of the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub missed_policy: MissedPolicy,
    /// A webhook trigger is configured (its token's hash is kept beside the spec).
    #[serde(default)]
    pub webhook: bool,
    /// Paused after this many consecutive failed runs.
    pub max_consecutive_failures: u32,
}

/// `POST …/automations`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationCreate {
    pub name: String,
    /// A 5-field cron expression or plain language ("every Monday at 9am"). Optional with a
    /// webhook trigger.
    #[serde(default)]
    pub schedule: Option<String>,
    pub instructions: String,
    /// A thread of the deployment, `"new"` for a fresh thread per firing, or `"default"` (the
    /// deployment's default thread, also when omitted).
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// IANA time zone of the schedule (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub missed_policy: Option<MissedPolicy>,
    #[serde(default)]
    pub trigger: Option<TriggerSpec>,
    /// Consecutive failed runs before the automation pauses itself (1–100, default 3).
    #[serde(default)]
    pub max_consecutive_failures: Option<u32>,
}

/// `trigger` at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerSpec {
    Webhook,
}

/// `PATCH …/automations/{id}`: omitted fields unchanged.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub missed_policy: Option<MissedPolicy>,
    #[serde(default)]
    pub max_consecutive_failures: Option<u32>,
}

/// An automation as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Automation {
    pub automation_id: AutomationId,
    pub deployment_id: DeploymentId,
    pub name: String,
    pub instructions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The cron expression the schedule was read as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// What the schedule means, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    pub enabled: bool,
    /// Why it was paused, when herm paused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    pub missed_policy: MissedPolicy,
    pub max_consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerInfo>,
    /// With `GET …/automations/{id}`: the latest firings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_runs: Vec<Firing>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The webhook trigger of an automation; `token` only in the creation response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// What started a firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FiringSource {
    Schedule,
    Manual,
    Webhook,
}

impl FiringSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
            Self::Webhook => "webhook",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// What became of a firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FiringStatus {
    /// A run started (or the message was handed to the busy thread).
    Fired,
    /// Not run (missed while down, per `missed_policy`, or paused).
    Skipped,
    /// Its run ended in error.
    Failed,
}

/// One firing of an automation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Firing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_at: Option<DateTime<Utc>>,
    pub source: FiringSource,
    pub status: FiringStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<ThreadId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_status: Option<crate::RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `202` of a webhook trigger or a run-now.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FiredRun {
    pub run_id: RunId,
    pub thread_id: ThreadId,
}

/// Status of a goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GoalStatus {
    /// Runs are being started toward it.
    Active,
    /// Waiting for a time or for a person.
    Waiting,
    /// A judge agreed it is done.
    Done,
    /// Its budget (runs, cost or deadline) ran out.
    Exhausted,
    Cancelled,
    /// It cannot continue (its thread is gone, its model is not configured).
    Failed,
}

impl GoalStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Exhausted | Self::Cancelled | Self::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Waiting => "waiting",
            Self::Done => "done",
            Self::Exhausted => "exhausted",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// A goal's fixed terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoalSpec {
    pub objective: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_criteria: Option<String>,
    pub max_runs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Seconds between a run that ended without finishing and the next one.
    pub check_every_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<DateTime<Utc>>,
}

/// A progress note the agent recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProgressNote {
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    pub created_at: DateTime<Utc>,
}

/// What the goal loop has learned so far (changed by the agent's tools and the loop, with
/// revision-conditional writes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GoalState {
    #[serde(default)]
    pub progress_notes: Vec<ProgressNote>,
    /// The agent claimed the goal done in this run, with this summary (cleared by a verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<(RunId, String)>,
    /// The agent asked not to be started again before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<DateTime<Utc>>,
    /// The judge's last feedback, for the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// Why the goal ended (or waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the judge's model calls cost (runs report their own).
    #[serde(default)]
    pub judge_cost_usd: f64,
}

/// `POST …/goals`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalCreate {
    pub objective: String,
    #[serde(default)]
    pub done_criteria: Option<String>,
    /// A thread of the deployment (default: a new thread for the goal).
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Runs at most (1–1000, default 10).
    #[serde(default)]
    pub max_runs: Option<u32>,
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Pause between runs that end unfinished: `30s`, `15m`, `1h`, `1d` (default `1m`).
    #[serde(default)]
    pub check_every: Option<String>,
    #[serde(default)]
    pub deadline_at: Option<DateTime<Utc>>,
}

/// A goal as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Goal {
    pub goal_id: GoalId,
    pub deployment_id: DeploymentId,
    pub thread_id: ThreadId,
    pub status: GoalStatus,
    pub objective: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_criteria: Option<String>,
    pub max_runs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    pub check_every: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<DateTime<Utc>>,
    pub runs: Vec<GoalRun>,
    pub cost_usd: f64,
    pub progress_notes: Vec<ProgressNote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One run of a goal.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GoalRun {
    pub run_id: RunId,
    pub status: crate::RunStatus,
    pub cost_usd: f64,
}

/// The judge's verdict on a claim that a goal is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    NeedsRevision,
}

/// Change of an automation's state, as its event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutomationState {
    Paused,
    Resumed,
}

/// Reads a duration such as `30s`, `15m`, `2h`, `1d` into seconds.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let mul = match unit.trim() {
        "s" | "sec" | "secs" | "seconds" => 1,
        "m" | "min" | "mins" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    n.checked_mul(mul).filter(|v| *v > 0)
}

/// Seconds as the shortest of `Ns`, `Nm`, `Nh`, `Nd`.
pub fn format_duration_secs(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print() {
        for (s, v) in [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86_400), ("90 minutes", 5400)] {
            assert_eq!(parse_duration_secs(s), Some(v), "{s}");
        }
        for bad in ["", "m", "0s", "5 fortnights", "-1m"] {
            assert_eq!(parse_duration_secs(bad), None, "{bad}");
        }
        assert_eq!(format_duration_secs(90), "90s");
        assert_eq!(format_duration_secs(5400), "90m");
        assert_eq!(format_duration_secs(7200), "2h");
    }
}
