//! What every CMA resource shares: ids, timestamps, metadata rules, the page shape, and the
//! facade's documents (a CMA object as JSON, kept through the engine).

use crate::{Error, Facade, Result, invalid};
use herm_store::{Document, History};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub(crate) const MAX_METADATA: usize = 16;
pub(crate) const MAX_METADATA_KEY: usize = 64;
pub(crate) const MAX_METADATA_VALUE: usize = 512;
pub(crate) const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 20;

/// A new id with CMA's prefix, time-ordered like herm's (so ids list in creation order).
pub(crate) fn new_id(prefix: &str) -> String {
    let raw = herm_types::EventId::new();
    format!("{prefix}{}", raw.as_str().trim_start_matches(herm_types::EventId::PREFIX))
}

pub(crate) fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `metadata` on create: `{str: str}`, at most 16 pairs, keys ≤ 64 and values ≤ 512 chars.
pub(crate) fn metadata(v: Option<&Value>) -> Result<Map<String, Value>> {
    let m = match v {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("`metadata` must be an object of strings")),
    };
    check_metadata(&m)?;
    Ok(m)
}

/// `metadata` on update is a patch: a string upserts, `null` deletes, an omitted key stays.
pub(crate) fn patch_metadata(current: &Value, patch: Option<&Value>) -> Result<Map<String, Value>> {
    let mut m = current.as_object().cloned().unwrap_or_default();
    match patch {
        None => {}
        Some(Value::Object(p)) => {
            for (k, v) in p {
                match v {
                    Value::Null => {
                        m.remove(k);
                    }
                    other => {
                        m.insert(k.clone(), other.clone());
                    }
                }
            }
        }
        Some(_) => return Err(invalid("`metadata` must be an object")),
    }
    check_metadata(&m)?;
    Ok(m)
}

fn check_metadata(m: &Map<String, Value>) -> Result<()> {
    if m.len() > MAX_METADATA {
        return Err(invalid(format!("`metadata` holds at most {MAX_METADATA} pairs")));
    }
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > MAX_METADATA_KEY {
            return Err(invalid(format!("`metadata` keys are 1-{MAX_METADATA_KEY} characters")));
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= MAX_METADATA_VALUE => {}
            Some(_) => return Err(invalid(format!("`metadata` values are at most {MAX_METADATA_VALUE} characters"))),
            None => return Err(invalid("`metadata` values must be strings")),
        }
    }
    Ok(())
}

/// A string field: present, a string, within `max` characters (and non-empty if required).
pub(crate) fn string(body: &Value, field: &str, max: usize, required: bool) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) if required => Err(invalid(format!("`{field}` is required"))),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if required && s.trim().is_empty() => {
            Err(invalid(format!("`{field}` must not be empty")))
        }
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(invalid(format!("`{field}` is longer than {max} characters")))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("`{field}` must be a string"))),
    }
}

/// The body must be an object whose keys are all known.
pub(crate) fn object<'a>(body: &'a Value, known: &[&str]) -> Result<&'a Map<String, Value>> {
    let m = body.as_object().ok_or_else(|| invalid("the body must be a JSON object"))?;
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(format!("`{k}`: unknown field")));
    }
    Ok(m)
}

/// Times a write that lost a race is applied again.
const RACE_RETRIES: u32 = 16;

/// Runs `write` again while it loses a race with another write of the same document
/// ([`Error::Conflict`]), up to [`RACE_RETRIES`] times: for changes that are meant for
/// whatever version is current, not for the version they read.
pub(crate) async fn again_on_lost_race<T, F: Future<Output = Result<T>>>(write: impl Fn() -> F) -> Result<T> {
    let mut tries = 0;
    loop {
        match write().await {
            Err(Error::Conflict(_)) if tries < RACE_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// A list's query: `limit` and the opaque `page` token.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub page: Option<String>,
}

impl PageQuery {
    pub(crate) fn limit(&self) -> Result<usize> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(invalid(format!("`limit` must be 1-{MAX_PAGE}"))),
        }
    }
}

/// CMA's page: `{data, next_page}` (null when there is no more).
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub data: Vec<Value>,
    pub next_page: Option<String>,
}

/// A page of a list held in full, after the item whose `id` is the page token (pure).
pub(crate) fn page_after_id(all: Vec<Value>, q: &PageQuery) -> Result<Page> {
    let limit = q.limit()?;
    let start = match q.page.as_deref().filter(|p| !p.is_empty()) {
        None => 0,
        Some(p) => all
            .iter()
            .position(|v| v["id"] == p)
            .map(|i| i + 1)
            .ok_or_else(|| invalid("`page` is not a page token of this list"))?,
    };
    let more = start + limit < all.len();
    let data: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    let next_page = more.then(|| data.last().and_then(|v| v["id"].as_str().map(str::to_owned))).flatten();
    Ok(Page { data, next_page })
}

impl Facade {
    /// Now, as the engine's clock says (the test clock when one is configured).
    pub(crate) fn now(&self) -> String {
        rfc3339(self.engine.now())
    }

    pub(crate) async fn doc(&self, kind: &'static str, id: &str, version: Option<i64>) -> Result<Document> {
        self.engine.document(kind, id, version).await?.ok_or(Error::NotFound(kind))
    }

    /// Writes version `version` of a document: the next one (conditional on `version - 1`
    /// being the latest), or the latest again ([`History::Rewrite`], conditional on it still
    /// being the latest).
    pub(crate) async fn put(&self, kind: &str, id: &str, version: i64, body: Value, history: History) -> Result<()> {
        let d = Document { kind: kind.into(), id: id.into(), version, body };
        match self.engine.put_document(d, history).await {
            Err(herm_engine::Error::Store(herm_store::Error::Stale)) => {
                Err(Error::Conflict(format!("the {kind} changed while this request was applied; read it again")))
            }
            other => Ok(other?),
        }
    }

    /// Marks a document archived (`archived_at`, `updated_at`) unless it is already, and
    /// returns it: the next version, or with [`History::Rewrite`] the same version rewritten.
    pub(crate) async fn archive_doc(&self, d: Document, history: History) -> Result<Value> {
        if !d.body["archived_at"].is_null() {
            return Ok(d.body);
        }
        let mut body = d.body;
        let t = self.now();
        body["archived_at"] = json!(t);
        body["updated_at"] = json!(t);
        let version = if history == History::Rewrite { d.version } else { d.version + 1 };
        self.put(&d.kind, &d.id, version, body.clone(), history).await?;
        Ok(body)
    }

    /// A page of a kind's documents by id; the token is the last id of the page.
    pub(crate) async fn doc_page(
        &self,
        kind: &str,
        q: &PageQuery,
        desc: bool,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let limit = q.limit()?;
        let docs = self.engine.documents(kind, q.page.clone().filter(|p| !p.is_empty()), desc, limit).await?;
        let next = (docs.len() == limit).then(|| docs.last().map(|d| d.id.clone())).flatten();
        Ok((docs.into_iter().map(|d| d.body).filter(|b| keep(b)).collect(), next))
    }
}
