//! Attachments in and out of the log. A message's attachments are checked against what the
//! deployment's model takes before anything else happens; their bytes are obtained (base64
//! decoded, or a URL fetched once, see [`fetch`]), inspected (the real type from the bytes,
//! the size, an image's sides) and stored by content before the message is appended, so the
//! log, the stream, history, resume and compaction carry references only. Before each model
//! call, [`Engine::load_media`] fills in the bytes of every medium the conversation shows,
//! from a small in-process cache or the store, never from the network again.

mod cache;
pub mod fetch;

pub use cache::MediaCache;

use crate::providers::ResolvedModel;
use crate::{Engine, Error, Result};
use base64::Engine as _;
use herm_llm::{MediaSource, Message};
use herm_store::{AttachmentRecord, DeploymentRecord};
use herm_types::attachment::{self, Attachment, AttachmentInput, AttachmentKind, limits};
use herm_types::config::{DeploymentSpec, ProviderKind};
use herm_types::*;
use sha2::{Digest, Sha256};
use std::sync::Arc;

impl Engine {
    /// The kinds of attachment the deployment's model takes, and its name.
    pub(crate) async fn accepted_kinds(&self, spec: &DeploymentSpec) -> Result<(String, Vec<AttachmentKind>)> {
        let Some(model) = spec.model.clone().or_else(|| self.options().default_model.clone()) else {
            return Err(Error::ModelNotConfigured("the deployment names no model and no default is configured".into()));
        };
        let resolved = self.providers().resolve(&model).await?;
        Ok((model, resolved.attachments()))
    }

    /// Checks, obtains, inspects and stores a message's attachments; returns the references
    /// the message carries. Nothing is stored when any of them is refused.
    pub(crate) async fn take_attachments(
        &self,
        dep: &DeploymentRecord,
        thread: &ThreadId,
        inputs: Vec<AttachmentInput>,
    ) -> Result<Vec<Attachment>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        attachment::check_all(&inputs).map_err(Error::Validation)?;
        // Before any download: can the model take these at all?
        self.refuse_what_the_model_cannot_take(&dep.spec, &inputs).await?;
        let taken = self.obtain(inputs).await?;
        let mut out = Vec::new();
        for (r, bytes) in taken {
            if let Err(e) = self.keep(dep, Some(thread), r.clone(), bytes).await {
                self.forget_attachments(dep, &out).await;
                return Err(e);
            }
            out.push(r);
        }
        Ok(out)
    }

    /// `unsupported_attachment` for the first kind the deployment's model does not take.
    async fn refuse_what_the_model_cannot_take(&self, spec: &DeploymentSpec, inputs: &[AttachmentInput]) -> Result<()> {
        let (model, kinds) = match self.accepted_kinds(spec).await {
            Ok(k) => k,
            Err(Error::ModelNotConfigured(why)) => {
                return Err(Error::UnsupportedAttachment(format!("no model can take these attachments: {why}")));
            }
            Err(e) => return Err(e),
        };
        match inputs.iter().find(|a| !kinds.contains(&a.kind)) {
            None => Ok(()),
            Some(a) => Err(Error::UnsupportedAttachment(format!(
                "model `{model}` does not take `{}` attachments (it takes: {})",
                a.kind.as_str(),
                if kinds.is_empty() { "text only".to_owned() } else { names(&kinds) },
            ))),
        }
    }

    /// Each attachment's bytes (decoded or fetched) and reference, inspected, within the
    /// message's total.
    async fn obtain(&self, inputs: Vec<AttachmentInput>) -> Result<Vec<(Attachment, Vec<u8>)>> {
        let mut taken = Vec::new();
        let mut total = 0usize;
        for (i, a) in inputs.into_iter().enumerate() {
            let bytes = self.attachment_bytes(&a).await.map_err(|m| invalid(i, m))?;
            total += bytes.len();
            if total > limits::MAX_TOTAL {
                return Err(invalid(i, format!("a message's attachments hold at most {} bytes", limits::MAX_TOTAL)));
            }
            let seen = attachment::inspect(a.kind, a.media_type.as_deref(), &bytes).map_err(|m| invalid(i, m))?;
            let name = a.name.or_else(|| a.url.as_deref().and_then(file_name));
            taken.push((reference(a.kind, &seen, &bytes, name, a.url), bytes));
        }
        Ok(taken)
    }

    /// Stores one attachment's bytes and record.
    pub(crate) async fn keep(
        &self,
        dep: &DeploymentRecord,
        thread: Option<&ThreadId>,
        reference: Attachment,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let rec = AttachmentRecord {
            deployment_id: dep.id.clone(),
            thread_id: thread.cloned(),
            reference,
            created_at: now(),
        };
        Ok(self.store().put_attachment(rec, bytes).await?)
    }

    /// Stores an image a tool produced (for the thread's next model call) and returns its
    /// reference; refused when the bytes are no image a model takes.
    pub(crate) async fn keep_image(
        &self,
        dep: &DeploymentRecord,
        thread: &ThreadId,
        bytes: Vec<u8>,
        declared: Option<&str>,
        name: Option<String>,
    ) -> Result<Attachment> {
        let seen = attachment::inspect(AttachmentKind::Image, declared, &bytes).map_err(Error::InvalidAttachment)?;
        let r = reference(AttachmentKind::Image, &seen, &bytes, name, None);
        self.keep(dep, Some(thread), r.clone(), bytes).await?;
        Ok(r)
    }

    /// Whether the deployment's model takes images (tools offer and return them only then).
    pub(crate) async fn sees_images(&self, spec: &DeploymentSpec) -> bool {
        self.accepted_kinds(spec).await.is_ok_and(|(_, k)| k.contains(&AttachmentKind::Image))
    }

    /// Removes attachments stored for a message that was then refused.
    pub(crate) async fn forget_attachments(&self, dep: &DeploymentRecord, refs: &[Attachment]) {
        let ids: Vec<AttachmentId> = refs.iter().filter_map(|r| r.attachment_id.clone()).collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store().remove_attachments(&dep.id, &ids).await {
            tracing::warn!(error = %e, "could not remove the attachments of a refused message");
        }
    }

    async fn attachment_bytes(&self, a: &AttachmentInput) -> std::result::Result<Vec<u8>, String> {
        let max = a.kind.max_size();
        match (&a.data, &a.url) {
            (Some(d), _) => {
                // Base64 is 4 characters per 3 bytes: refuse what cannot fit before decoding.
                if d.len() / 4 * 3 > max + 3 {
                    return Err(format!("the {} is larger than {max} bytes", a.kind.as_str()));
                }
                base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .map_err(|e| format!("`data` is not valid base64: {e}"))
            }
            (None, Some(u)) => {
                let (bytes, _) =
                    self.inner_fetcher().get(u, max).await.map_err(|e| format!("fetching its URL failed: {e}"))?;
                Ok(bytes)
            }
            (None, None) => Err("an attachment needs `url` or `data`".into()),
        }
    }

    /// An attachment's reference and bytes, for a client downloading it.
    pub async fn attachment_content(&self, dep: &DeploymentId, id: &AttachmentId) -> Result<(Attachment, Vec<u8>)> {
        let rec = self.store().get_attachment(dep, id).await?.ok_or(Error::NotFound("attachment"))?;
        let bytes = self.store().blob(dep, &rec.reference.sha256).await?.ok_or(Error::NotFound("attachment"))?;
        Ok((rec.reference, bytes))
    }

    /// Fills in every medium of `messages`: the bytes herm stored (base64, cached), the URL
    /// for a provider that fetches URLs itself, or a note where the model is not shown it.
    /// Only the latest media within [`MAX_MEDIA_PER_REQUEST`] and [`MAX_MEDIA_BYTES`] are
    /// sent; older ones are described instead.
    /// A message with media is copied before it is changed (it may be shared with the
    /// conversation the worker keeps); one without is left shared.
    pub(crate) async fn load_media(&self, dep: &DeploymentId, messages: &mut [Arc<Message>], model: &ResolvedModel) {
        let kinds = model.attachments();
        let sizes: Vec<u64> = messages.iter().flat_map(|m| m.media()).map(|x| x.attachment.size).collect();
        if sizes.is_empty() {
            return;
        }
        let sent = within_budget(&sizes);
        let mut i = 0;
        for m in messages.iter_mut().filter(|m| m.media().next().is_some()) {
            for media in Arc::make_mut(m).media_mut() {
                if !sent[i] {
                    media.source = MediaSource::Omitted(format!(
                        "not sent again: a request carries only the latest {MAX_MEDIA_PER_REQUEST} images and \
                         documents, {} MB at most",
                        MAX_MEDIA_BYTES / 1024 / 1024
                    ));
                } else if media.source == MediaSource::Stored {
                    media.source = self.media_source(dep, &media.attachment, &kinds, model).await;
                }
                i += 1;
            }
        }
    }

    async fn media_source(
        &self,
        dep: &DeploymentId,
        a: &Attachment,
        kinds: &[AttachmentKind],
        model: &ResolvedModel,
    ) -> MediaSource {
        if !kinds.contains(&a.kind) {
            return MediaSource::Omitted(format!(
                "not shown: model `{}` does not take {}s",
                model.model,
                a.kind.as_str()
            ));
        }
        let forwardable = a.kind == AttachmentKind::Image || model.spec.kind == ProviderKind::Anthropic;
        if let Some(url) = a.url.as_ref().filter(|_| model.spec.forward_urls && forwardable) {
            return MediaSource::Url(url.clone());
        }
        if a.sha256.is_empty() {
            return MediaSource::Omitted("never stored".into());
        }
        if let Some(b64) = self.media_cache().get(dep, &a.sha256) {
            return MediaSource::Base64(b64);
        }
        match self.store().blob(dep, &a.sha256).await {
            Ok(Some(bytes)) => {
                let b64: Arc<str> = base64::engine::general_purpose::STANDARD.encode(&bytes).into();
                self.media_cache().put(dep, &a.sha256, b64.clone());
                MediaSource::Base64(b64)
            }
            Ok(None) => MediaSource::Omitted("no longer available: it was deleted".into()),
            Err(e) => {
                tracing::warn!(error = %e, "an attachment could not be read");
                MediaSource::Omitted("could not be read".into())
            }
        }
    }
}

/// Most images and documents sent with one request (Anthropic takes 100).
pub const MAX_MEDIA_PER_REQUEST: usize = 50;
/// Most bytes of media (as base64) sent with one request (Anthropic takes 32 MB in all).
pub const MAX_MEDIA_BYTES: u64 = 20 * 1024 * 1024;

/// Which media of a conversation (sizes in bytes, oldest first) go with a request: the
/// latest ones, while they fit both caps; everything older than the first that does not fit
/// stays behind.
pub fn within_budget(sizes: &[u64]) -> Vec<bool> {
    let mut sent = vec![false; sizes.len()];
    let (mut count, mut bytes) = (0usize, 0u64);
    for (i, size) in sizes.iter().enumerate().rev() {
        let b64 = size.div_ceil(3) * 4;
        if count == MAX_MEDIA_PER_REQUEST || bytes + b64 > MAX_MEDIA_BYTES {
            break;
        }
        count += 1;
        bytes += b64;
        sent[i] = true;
    }
    sent
}

/// A stored medium's reference, with a fresh id.
pub(crate) fn reference(
    kind: AttachmentKind,
    seen: &attachment::Inspected,
    bytes: &[u8],
    name: Option<String>,
    url: Option<String>,
) -> Attachment {
    Attachment {
        kind,
        media_type: seen.media_type.to_owned(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        name,
        attachment_id: Some(AttachmentId::new()),
        url,
        width: seen.size.0,
        height: seen.size.1,
    }
}

fn invalid(i: usize, m: String) -> Error {
    Error::InvalidAttachment(format!("attachment {i}: {m}"))
}

fn names(kinds: &[AttachmentKind]) -> String {
    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
}

/// The last path segment of a URL, as the attachment's name.
fn file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let (_, path) = rest.split(['?', '#']).next()?.split_once('/')?;
    let last = path.rsplit('/').next()?;
    (!last.is_empty() && last.len() <= limits::MAX_NAME && !last.chars().any(char::is_control)).then(|| last.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_media_within_the_caps_are_sent() {
        const MB: u64 = 1024 * 1024;
        let cases: Vec<(Vec<u64>, Vec<bool>)> = vec![
            (vec![10, 20], vec![true, true]),
            // 3 MB is 4 MB as base64: five fit in 20 MB, the oldest stays behind.
            (vec![3 * MB; 6], vec![false, true, true, true, true, true]),
            // A large old one stops everything before it.
            (vec![1, 16 * MB, 1, 1], vec![false, false, true, true]),
            (vec![16 * MB], vec![false]),
        ];
        for (sizes, want) in cases {
            assert_eq!(within_budget(&sizes), want, "{sizes:?}");
        }
        let many = within_budget(&vec![1; MAX_MEDIA_PER_REQUEST + 5]);
        assert_eq!(many.iter().filter(|s| **s).count(), MAX_MEDIA_PER_REQUEST);
        assert!(!many[4] && many[5]);
    }

    #[test]
    fn names_from_urls() {
        for (u, want) in [
            ("https://x.test/a/thumb.png?sig=1", Some("thumb.png")),
            ("https://x.test/", None),
            ("https://x.test", None),
            ("http://x.test/brief.pdf#page=2", Some("brief.pdf")),
        ] {
            assert_eq!(file_name(u).as_deref(), want, "{u}");
        }
    }
}
