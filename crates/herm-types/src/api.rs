//! Public wire types of the REST API: requests, responses and problem documents.
//! Domain configuration that is also a request body lives in [`crate::config`].

use crate::attachment::AttachmentInput;
use crate::config::{DeploymentSpec, FieldError, ProviderSpec};
use crate::ids::*;
use crate::status::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// RFC 7807 problem document, with herm's stable `code`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// A page of a list.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FilesystemInfo {
    pub workspace_path: String,
    pub persistent: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsInfo {
    pub transport: String,
    pub url: String,
}

/// A deployment as returned by the API (configuration included; secrets as references).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentResponse {
    pub deployment_id: DeploymentId,
    pub status: DeploymentStatus,
    pub thread_id: ThreadId,
    pub filesystem: FilesystemInfo,
    pub events: EventsInfo,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub spec: DeploymentSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeletedResponse {
    pub deployment_id: DeploymentId,
    pub status: DeploymentStatus,
}

/// `POST /v1/deployments/{id}/messages`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    #[schema(min_length = 1, max_length = 200000, pattern = "\\S")]
    pub content: String,
    /// An existing `thr_…`, or `"new"`; the default thread when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Images and documents for the model (at most 10): a URL herm fetches once, or base64
    /// `data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentInput>,
}

/// What happened to a sent message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Started,
    Steered,
    Queued,
    Interrupted,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageResponse {
    pub run_id: RunId,
    pub deployment_id: DeploymentId,
    pub thread_id: ThreadId,
    pub status: RunStatus,
    pub disposition: Disposition,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadCreate {
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadPatch {
    pub title: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ThreadSummary {
    pub thread_id: ThreadId,
    pub deployment_id: DeploymentId,
    pub title: Option<String>,
    pub status: ThreadStatus,
    pub message_count: u64,
    /// `sequence` of the thread's newest event (0 when empty): a stream cursor for "from now".
    pub last_sequence: i64,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ThreadMessage {
    pub role: crate::event::Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ThreadDetail {
    #[serde(flatten)]
    pub summary: ThreadSummary,
    pub messages: Vec<ThreadMessage>,
    /// Steering requests waiting for a person, oldest first.
    pub pending: Vec<PendingRequest>,
}

/// A steering request waiting for a person (approval or question).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PendingRequest {
    pub request_id: RequestId,
    pub run_id: RunId,
    pub kind: crate::event::RequestKind,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

/// A tool as the Tools API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    /// `builtin`, `http` or `mcp:<server>`.
    pub origin: String,
    pub enabled: bool,
    pub permission: crate::config::ToolPermission,
    pub repeat_safe: bool,
    /// The JSON Schema its arguments must fit (an edited approval is checked against it).
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

/// `PATCH …/tools/{name}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub permission: Option<crate::config::ToolPermission>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RunResponse {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub deployment_id: DeploymentId,
    pub status: RunStatus,
    /// What the run works for: `user`, `observer`, `dream`, `automation` or `goal`.
    pub kind: crate::status::RunKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<crate::status::RunTrigger>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    pub steps: u32,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::event::RunError>,
}

/// One user event of `POST /v1/threads/{id}/events`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum UserEvent {
    #[serde(rename = "user.message")]
    Message {
        content: String,
        #[serde(default)]
        attachments: Vec<AttachmentInput>,
    },
    #[serde(rename = "user.steer")]
    Steer { message: String },
    #[serde(rename = "user.interrupt")]
    Interrupt {
        #[serde(default)]
        message: Option<String>,
    },
    #[serde(rename = "user.tool_confirmation")]
    ToolConfirmation {
        request_id: RequestId,
        result: ConfirmationResult,
        #[serde(default)]
        deny_message: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        input: Option<Value>,
    },
    #[serde(rename = "user.answer")]
    Answer { request_id: RequestId, answer: String },
}

/// The `result` of a `user.tool_confirmation`: the same decision the log records.
pub type ConfirmationResult = crate::event::Confirmation;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEventsRequest {
    pub events: Vec<UserEvent>,
}

/// The outcome of one user event, in request order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UserEventOutcome {
    #[serde(rename = "type")]
    pub kind: String,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<Disposition>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UserEventsResponse {
    pub thread_id: ThreadId,
    pub results: Vec<UserEventOutcome>,
}

/// `POST /v1/secrets`. The value is write-only.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretCreate {
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    pub name: String,
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

/// Serialized only to check a request's shape at the edge: the value is never written out.
impl Serialize for SecretCreate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SecretCreate", 3)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("value", "[redacted]")?;
        st.serialize_field("description", &self.description)?;
        st.end()
    }
}

impl std::fmt::Debug for SecretCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCreate").field("name", &self.name).field("value", &"<redacted>").finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretMeta {
    pub secret_id: SecretId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[schema(min_items = 1, inline, value_type = Vec<ApiScope>)]
    pub scopes: Vec<String>,
}

/// A scope an API key can carry (`admin` implies the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ApiScope {
    #[serde(rename = "deployments:read")]
    DeploymentsRead,
    #[serde(rename = "deployments:write")]
    DeploymentsWrite,
    #[serde(rename = "secrets:write")]
    SecretsWrite,
    #[serde(rename = "admin")]
    Admin,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyMeta {
    pub key_id: ApiKeyId,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Returned once, when a key is created.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub meta: ApiKeyMeta,
    pub key: String,
}

/// A provider as `GET /v1/providers` lists it: its name, where it comes from, and its
/// spec's fields side by side (spelled out rather than flattened, so the schema says exactly
/// what the response holds).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProviderResponse {
    pub name: String,
    /// `api` (stored, managed through the API) or `config` (from the config file).
    pub source: String,
    pub kind: crate::config::ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    pub models: std::collections::BTreeMap<String, crate::config::ModelPrice>,
}

impl ProviderResponse {
    pub fn new(name: String, source: &str, spec: ProviderSpec) -> Self {
        Self {
            name,
            source: source.into(),
            kind: spec.kind,
            base_url: spec.base_url,
            api_key_secret: spec.api_key_secret,
            api_key_env: spec.api_key_env,
            models: spec.models,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// How `GET …/usage` groups: by UTC day (`YYYY-MM-DD`) or by model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroup {
    #[default]
    Day,
    Model,
}

/// Tokens and cost of the model calls (and compaction summaries) in one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    pub key: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Whether any count in it is herm's estimate rather than the provider's report.
    pub estimated: bool,
}

/// `GET /v1/deployments/{id}/usage`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    pub data: Vec<UsageRow>,
    pub total: UsageRow,
}
