//! The provider registry: resolves `provider/model` to a client, the model's name at the
//! provider, its price, and where its API key lives. Providers come from the config file and
//! from the API (stored); a stored provider overrides a configured one of the same name.

use crate::{Error, Result};
use herm_llm::{Anthropic, HttpSettings, ModelClient, OpenAi};
use herm_store::vault::SecretValue;
use herm_store::{DeploymentRecord, Store};
use herm_types::SecretId;
use herm_types::attachment::AttachmentKind;
use herm_types::config::{ModelPrice, ProviderKind, ProviderSpec};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A model resolved for one call.
#[derive(Clone)]
pub struct ResolvedModel {
    pub client: Arc<dyn ModelClient>,
    /// The model's name at its provider.
    pub model: String,
    pub price: ModelPrice,
    pub spec: ProviderSpec,
}

impl ResolvedModel {
    /// The model's context window: as configured, else the known size for its family.
    pub fn context_window(&self) -> u64 {
        self.price.context_window.unwrap_or_else(|| known_window(&self.model))
    }

    /// Kinds of attachment the model takes: as configured, else what its family takes.
    pub fn attachments(&self) -> Vec<AttachmentKind> {
        self.price.attachments.clone().unwrap_or_else(|| known_attachments(self.spec.kind, &self.model))
    }

    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.price.input_per_mtok + output as f64 * self.price.output_per_mtok) / 1_000_000.0
    }
}

struct Entry {
    spec: ProviderSpec,
    source: &'static str,
    client: Arc<dyn ModelClient>,
}

/// Test hook: a client to use for a provider kind instead of the HTTP adapters.
pub type ClientFactory = Arc<dyn Fn(&ProviderSpec) -> Option<Arc<dyn ModelClient>> + Send + Sync>;

pub struct Providers {
    store: Arc<dyn Store>,
    configured: BTreeMap<String, ProviderSpec>,
    settings: HttpSettings,
    factory: Option<ClientFactory>,
    cache: Mutex<Option<Arc<HashMap<String, Entry>>>>,
}

impl Providers {
    pub fn new(store: Arc<dyn Store>, configured: BTreeMap<String, ProviderSpec>, settings: HttpSettings) -> Self {
        Self { store, configured, settings, factory: None, cache: Mutex::new(None) }
    }

    /// Replaces the HTTP adapters with in-process clients (benchmarks).
    pub fn with_factory(mut self, f: ClientFactory) -> Self {
        self.factory = Some(f);
        self
    }

    /// Forgets the cached registry; call after a provider is changed through the API.
    pub fn invalidate(&self) {
        *self.cache.lock() = None;
    }

    fn client_for(&self, spec: &ProviderSpec) -> Arc<dyn ModelClient> {
        if let Some(c) = self.factory.as_ref().and_then(|f| f(spec)) {
            return c;
        }
        match spec.kind {
            ProviderKind::Anthropic => Arc::new(Anthropic::new(spec.base_url.as_deref(), self.settings.clone())),
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
                Arc::new(OpenAi::new(spec.base_url.as_deref(), self.settings.clone()))
            }
        }
    }

    async fn entries(&self) -> Result<Arc<HashMap<String, Entry>>> {
        if let Some(c) = self.cache.lock().clone() {
            return Ok(c);
        }
        let mut map = HashMap::new();
        for (name, spec) in &self.configured {
            map.insert(name.clone(), Entry { client: self.client_for(spec), spec: spec.clone(), source: "config" });
        }
        for (name, spec) in self.store.list_providers().await? {
            map.insert(name, Entry { client: self.client_for(&spec), spec, source: "api" });
        }
        let map = Arc::new(map);
        *self.cache.lock() = Some(map.clone());
        Ok(map)
    }

    /// Every provider with where it came from (`config` or `api`).
    pub async fn list(&self) -> Result<Vec<(String, &'static str, ProviderSpec)>> {
        let mut v: Vec<_> = self.entries().await?.iter().map(|(n, e)| (n.clone(), e.source, e.spec.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.entries().await?.contains_key(name))
    }

    pub async fn resolve(&self, model: &str) -> Result<ResolvedModel> {
        let Some((provider, name)) = model.split_once('/') else {
            return Err(Error::ModelNotConfigured(format!("`{model}` is not `provider/model`")));
        };
        let entries = self.entries().await?;
        let e = entries
            .get(provider)
            .ok_or_else(|| Error::ModelNotConfigured(format!("provider `{provider}` is not configured")))?;
        Ok(ResolvedModel {
            client: e.client.clone(),
            model: name.to_owned(),
            price: e.spec.models.get(name).cloned().unwrap_or_default(),
            spec: e.spec.clone(),
        })
    }
}

/// Why a model cannot be called: a stable code and a message.
pub(crate) type Unconfigured = (&'static str, String);

impl crate::Engine {
    /// The deployment's model (or the default), its client and price, and the API key from
    /// the vault or the environment.
    pub(crate) async fn model_access(
        &self,
        dep: &DeploymentRecord,
    ) -> crate::Result<Result<(String, ResolvedModel, Option<SecretValue>), Unconfigured>> {
        let engine = self;
        let Some(model) = dep.spec.model.clone().or_else(|| engine.options().default_model.clone()) else {
            let why = "the deployment names no model and no default is configured";
            return Ok(Err(("model_not_configured", why.into())));
        };
        let resolved = match engine.providers().resolve(&model).await {
            Ok(r) => r,
            Err(Error::ModelNotConfigured(m)) => return Ok(Err(("model_not_configured", m))),
            Err(e) => return Err(e),
        };
        let api_key = match (&resolved.spec.api_key_secret, &resolved.spec.api_key_env) {
            (Some(r), _) => {
                let value = match SecretId::parse(r) {
                    Ok(id) => engine.secrets().value(&id).await?,
                    Err(_) => None,
                };
                if value.is_none() {
                    let why = "the provider's API key secret does not exist";
                    return Ok(Err(("invalid_secret_ref", why.into())));
                }
                value
            }
            (None, Some(var)) => std::env::var(var).ok().map(SecretValue::new),
            (None, None) => None,
        };
        Ok(Ok((model, resolved, api_key)))
    }
}

/// Context windows of known model families (tokens); 128k for a model herm does not know.
pub fn known_window(model: &str) -> u64 {
    let m = model.to_ascii_lowercase();
    let table: [(&str, u64); 9] = [
        ("claude", 200_000),
        ("gpt-4.1", 1_047_576),
        ("gpt-5", 400_000),
        ("gpt-4o", 128_000),
        ("gpt-4-turbo", 128_000),
        ("gpt-3.5", 16_385),
        ("o1", 200_000),
        ("o3", 200_000),
        ("o4", 200_000),
    ];
    table.iter().find(|(p, _)| m.starts_with(p)).map(|(_, w)| *w).unwrap_or(128_000)
}

/// What known model families take besides text: Claude 3 and later, and OpenAI's vision
/// models, take images and PDFs. A model herm does not know (any OpenAI-compatible server's)
/// takes none unless its provider settings say so.
pub fn known_attachments(kind: ProviderKind, model: &str) -> Vec<AttachmentKind> {
    let m = model.to_ascii_lowercase();
    let both = vec![AttachmentKind::Image, AttachmentKind::Document];
    match kind {
        ProviderKind::Anthropic if m.starts_with("claude-") && !m.starts_with("claude-2") && !m.contains("instant") => {
            both
        }
        ProviderKind::Openai
            if ["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o"]
                .iter()
                .any(|p| m.starts_with(p))
                && !m.starts_with("o1-mini")
                && !m.starts_with("o3-mini") =>
        {
            both
        }
        ProviderKind::Openai if m.starts_with("gpt-4-turbo") => vec![AttachmentKind::Image],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn known_models_take_their_attachments() {
        use AttachmentKind::*;
        for (k, m, want) in [
            (ProviderKind::Anthropic, "claude-sonnet-4-5", vec![Image, Document]),
            (ProviderKind::Anthropic, "claude-2.1", vec![]),
            (ProviderKind::Openai, "gpt-4o-mini", vec![Image, Document]),
            (ProviderKind::Openai, "o3-mini", vec![]),
            (ProviderKind::Openai, "gpt-4-turbo", vec![Image]),
            (ProviderKind::Openai, "gpt-3.5-turbo", vec![]),
            (ProviderKind::OpenaiCompatible, "gpt-4o", vec![]),
        ] {
            assert_eq!(known_attachments(k, m), want, "{m}");
        }
    }

    #[test]
    fn known_models_have_their_window() {
        for (m, w) in [
            ("claude-sonnet-4-5", 200_000),
            ("gpt-4.1-mini", 1_047_576),
            ("gpt-4o", 128_000),
            ("o3-mini", 200_000),
            ("llama3", 128_000),
        ] {
            assert_eq!(super::known_window(m), w, "{m}");
        }
    }
}
