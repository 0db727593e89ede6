//! Attachments: images and documents that a user message (or a tool result) carries to the
//! model. What a client sends ([`AttachmentInput`]: a URL, or base64 bytes), what the log
//! keeps ([`Attachment`]: a reference with kind, media type, size and SHA-256, never the
//! bytes), and pure checks on the bytes themselves: their real type from their first bytes
//! ([`sniff`]) and an image's pixel size from its header ([`image_size`]).

use crate::AttachmentId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Sizes and counts accepted at the edge.
pub mod limits {
    /// Attachments on one message.
    pub const MAX_PER_MESSAGE: usize = 10;
    /// One image (Anthropic's limit per image; OpenAI takes up to 20 MB).
    pub const MAX_IMAGE: usize = 5 * 1024 * 1024;
    /// One document (Anthropic's limit for a whole request).
    pub const MAX_DOCUMENT: usize = 32 * 1024 * 1024;
    /// All attachments of one message together.
    pub const MAX_TOTAL: usize = 32 * 1024 * 1024;
    /// Longest side of an image, in pixels (providers refuse larger ones).
    pub const MAX_EDGE: u32 = 8000;
    pub const MAX_NAME: usize = 255;
    pub const MAX_URL: usize = 4096;
}

/// What an attachment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    /// A PDF.
    Document,
    Audio,
    Video,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    /// The largest attachment of this kind.
    pub fn max_size(self) -> usize {
        match self {
            Self::Image => limits::MAX_IMAGE,
            _ => limits::MAX_DOCUMENT,
        }
    }
}

/// An attachment as a client sends it: a URL herm fetches once, or base64 `data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentInput {
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The bytes, base64 (standard alphabet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `image/png`, `image/jpeg`, `image/gif`, `image/webp` or `application/pdf`; checked
    /// against the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl AttachmentInput {
    /// Shape checks that need no bytes: one source, a web URL, a known media type that
    /// matches the kind, a short name.
    pub fn check(&self) -> Result<(), String> {
        match (&self.url, &self.data) {
            (Some(_), Some(_)) => return Err("an attachment has either `url` or `data`, not both".into()),
            (None, None) => return Err("an attachment needs `url` or `data`".into()),
            (Some(u), None) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > limits::MAX_URL {
                    return Err(format!("attachment urls must be http(s) URLs of at most {} bytes", limits::MAX_URL));
                }
            }
            (None, Some(_)) => {}
        }
        if let Some(m) = &self.media_type {
            match kind_of(m) {
                None => {
                    return Err(format!("media type `{}` is not supported (use {})", short(m), SUPPORTED.join(", ")));
                }
                Some(k) if k != self.kind => {
                    return Err(format!("media type `{m}` is not a `{}` attachment", self.kind.as_str()));
                }
                _ => {}
            }
        }
        if self.name.as_ref().is_some_and(|n| n.len() > limits::MAX_NAME || n.chars().any(char::is_control)) {
            return Err(format!("an attachment name has at most {} bytes and no control characters", limits::MAX_NAME));
        }
        Ok(())
    }
}

/// Shape checks of a message's attachments: how many, and each one's (see
/// [`AttachmentInput::check`]).
pub fn check_all(inputs: &[AttachmentInput]) -> Result<(), String> {
    if inputs.len() > limits::MAX_PER_MESSAGE {
        return Err(format!("at most {} attachments", limits::MAX_PER_MESSAGE));
    }
    for (i, a) in inputs.iter().enumerate() {
        a.check().map_err(|m| format!("attachment {i}: {m}"))?;
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(100).collect()
}

/// An attachment as the log keeps it: a reference to stored bytes. Earlier versions wrote
/// `{type, url}` only; those read with the other fields empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    #[serde(default)]
    pub media_type: String,
    /// Bytes stored.
    #[serde(default)]
    pub size: u64,
    /// Hex SHA-256 of the bytes stored.
    #[serde(default)]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub attachment_id: Option<AttachmentId>,
    /// Where herm fetched it from, for an attachment sent as a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Pixel size of an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl Attachment {
    /// A short description for text renderings (compaction, logs): never the bytes.
    pub fn describe(&self) -> String {
        let name = self.name.as_deref().map(|n| format!(" `{n}`")).unwrap_or_default();
        let dims = match (self.width, self.height) {
            (Some(w), Some(h)) => format!(", {w}x{h}"),
            _ => String::new(),
        };
        format!("[{}{name}: {}{dims}, {} bytes]", self.kind.as_str(), self.media_type, self.size)
    }
}

/// What a stored attachment's bytes were found to be.
#[derive(Clone, Debug, PartialEq)]
pub struct Inspected {
    pub media_type: &'static str,
    pub size: (Option<u32>, Option<u32>),
}

/// Checks bytes sent as an attachment of `kind`: a supported type (from the bytes, not the
/// sender's word, which must agree if given), within the kind's size, an image's sides within
/// [`limits::MAX_EDGE`].
pub fn inspect(kind: AttachmentKind, declared: Option<&str>, b: &[u8]) -> Result<Inspected, String> {
    if b.is_empty() {
        return Err("the attachment is empty".into());
    }
    if b.len() > kind.max_size() {
        return Err(format!("the {} is {} bytes; the limit is {} bytes", kind.as_str(), b.len(), kind.max_size()));
    }
    let Some(real) = sniff(b) else {
        return Err(format!("the bytes are none of {}", SUPPORTED.join(", ")));
    };
    if kind_of(real) != Some(kind) {
        return Err(format!("the bytes are `{real}`, not a `{}`", kind.as_str()));
    }
    if let Some(d) = declared
        && d != real
        && !(d == "image/jpg" && real == "image/jpeg")
    {
        return Err(format!("the bytes are `{real}`, not the declared `{}`", short(d)));
    }
    let size = match kind {
        AttachmentKind::Image => {
            let (w, h) = image_size(b).ok_or("the image's header could not be read")?;
            if w == 0 || h == 0 || w > limits::MAX_EDGE || h > limits::MAX_EDGE {
                return Err(format!("the image is {w}x{h} pixels; each side must be 1 to {}", limits::MAX_EDGE));
            }
            (Some(w), Some(h))
        }
        _ => (None, None),
    };
    Ok(Inspected { media_type: real, size })
}

/// The media types herm passes to models.
pub const SUPPORTED: [&str; 5] = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"];

/// The kind of a supported media type.
pub fn kind_of(media_type: &str) -> Option<AttachmentKind> {
    match media_type {
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Some(AttachmentKind::Image),
        "application/pdf" => Some(AttachmentKind::Document),
        _ => None,
    }
}

/// The media type the bytes really are, from their signature.
pub fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else if b.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?])))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?])))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, 0]))
}

/// An image's width and height from its header (PNG, JPEG, GIF, WebP); None when the header
/// is not there or not understood.
pub fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    match sniff(b)? {
        "image/png" => {
            let w = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
            let h = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
            Some((w, h))
        }
        "image/gif" => Some((le16(b, 6)?, le16(b, 8)?)),
        "image/webp" => match b.get(12..16)? {
            b"VP8 " => Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)),
            b"VP8L" => {
                let (b0, b1, b2, b3) =
                    (u32::from(*b.get(21)?), u32::from(*b.get(22)?), u32::from(*b.get(23)?), u32::from(*b.get(24)?));
                Some((1 + (((b1 & 0x3F) << 8) | b0), 1 + (((b3 & 0x0F) << 10) | (b2 << 2) | ((b1 & 0xC0) >> 6))))
            }
            b"VP8X" => Some((1 + le24(b, 24)?, 1 + le24(b, 27)?)),
            _ => None,
        },
        "image/jpeg" => jpeg_size(b),
        _ => None,
    }
}

/// Walks a JPEG's segments to its frame header (SOFn).
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        while *b.get(i)? != 0xFF {
            i += 1;
        }
        while *b.get(i)? == 0xFF {
            i += 1;
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Some((be16(b, i + 5)?, be16(b, i + 3)?));
            }
            _ => i += usize::try_from(be16(b, i)?).ok()?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, bytes, size read from them).
    type SizeCase = (&'static str, Vec<u8>, Option<(u32, u32)>);
    /// (kind, declared type, bytes, the type found or a part of the refusal).
    type InspectCase = (AttachmentKind, Option<&'static str>, Vec<u8>, Result<&'static str, &'static str>);

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        v.extend(w.to_be_bytes());
        v.extend(h.to_be_bytes());
        v
    }

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0]; // SOI, APP0 of 4 bytes
        v.extend([0xFF, 0xC4, 0, 3, 0]); // DHT (not a frame header)
        v.extend([0xFF, 0xC2, 0, 11, 8]); // progressive SOF
        v.extend(h.to_be_bytes());
        v.extend(w.to_be_bytes());
        v
    }

    fn webp(chunk: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WEBP".to_vec();
        v.extend(chunk);
        v.extend([0, 0, 0, 0]);
        v.extend(payload);
        v
    }

    #[test]
    fn sizes_from_headers() {
        let mut gif = b"GIF89a".to_vec();
        gif.extend(640u16.to_le_bytes());
        gif.extend(480u16.to_le_bytes());
        // VP8: frame tag (3), start code (3), then 14-bit width and height.
        let vp8 = webp(b"VP8 ", &[0, 0, 0, 0x9d, 0x01, 0x2a, 0x20, 0x03, 0x58, 0x02]);
        // VP8L: signature 0x2f, then 14 bits width-1 and 14 bits height-1.
        let (w, h) = (1000u32 - 1, 700u32 - 1);
        let bits = w | (h << 14);
        let vp8l = webp(b"VP8L", &[0x2f, bits as u8, (bits >> 8) as u8, (bits >> 16) as u8, (bits >> 24) as u8]);
        let vp8x = webp(b"VP8X", &[0, 0, 0, 0, 0x1F, 0x03, 0, 0x57, 0x02, 0]);
        let cases: Vec<SizeCase> = vec![
            ("png", png(1920, 1080), Some((1920, 1080))),
            ("jpeg past other segments", jpeg(4000, 3000), Some((4000, 3000))),
            ("gif", gif, Some((640, 480))),
            ("webp lossy", vp8, Some((800, 600))),
            ("webp lossless", vp8l, Some((1000, 700))),
            ("webp extended", vp8x, Some((800, 600))),
            ("truncated png", png(1, 1)[..18].to_vec(), None),
            ("truncated jpeg", jpeg(1, 1)[..12].to_vec(), None),
            ("not an image", b"%PDF-1.7".to_vec(), None),
            ("nothing", vec![], None),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(image_size(&bytes), want, "{name}");
        }
    }

    #[test]
    fn real_types_from_signatures() {
        let cases: Vec<(&[u8], Option<&str>)> = vec![
            (b"\x89PNG\r\n\x1a\nrest", Some("image/png")),
            (&[0xFF, 0xD8, 0xFF, 0xE1], Some("image/jpeg")),
            (b"GIF87a..", Some("image/gif")),
            (b"RIFF1234WEBPVP8 ", Some("image/webp")),
            (b"RIFF1234WAVEfmt ", None),
            (b"%PDF-1.4", Some("application/pdf")),
            (b"<html>", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), want);
        }
    }

    #[test]
    fn input_shapes() {
        let input = |url: Option<&str>, data: Option<&str>, media: Option<&str>, kind| AttachmentInput {
            kind,
            url: url.map(Into::into),
            data: data.map(Into::into),
            media_type: media.map(Into::into),
            name: None,
        };
        use AttachmentKind::*;
        let cases = vec![
            (input(Some("https://x/a.png"), None, None, Image), true),
            (input(None, Some("AAAA"), Some("image/png"), Image), true),
            (input(None, Some("AAAA"), Some("application/pdf"), Document), true),
            (input(Some("https://x"), Some("AAAA"), None, Image), false),
            (input(None, None, None, Image), false),
            (input(Some("file:///etc/passwd"), None, None, Image), false),
            (input(None, Some("AAAA"), Some("image/tiff"), Image), false),
            (input(None, Some("AAAA"), Some("application/pdf"), Image), false),
        ];
        for (i, (a, ok)) in cases.into_iter().enumerate() {
            assert_eq!(a.check().is_ok(), ok, "case {i}: {a:?}");
        }
    }

    #[test]
    fn inspection() {
        use AttachmentKind::*;
        let big = {
            let mut v = png(100, 100);
            v.resize(limits::MAX_IMAGE + 1, 0);
            v
        };
        let cases: Vec<InspectCase> = vec![
            (Image, None, png(640, 480), Ok("image/png")),
            (Image, Some("image/png"), png(640, 480), Ok("image/png")),
            (Image, Some("image/jpg"), jpeg(10, 10), Ok("image/jpeg")),
            (Document, Some("application/pdf"), b"%PDF-1.7 ...".to_vec(), Ok("application/pdf")),
            (Image, Some("image/gif"), png(1, 1), Err("not the declared")),
            (Image, None, b"%PDF-1.7".to_vec(), Err("not a `image`")),
            (Image, None, b"<svg/>".to_vec(), Err("none of")),
            (Image, None, png(9000, 10), Err("9000x10")),
            (Image, None, big, Err("the limit is")),
            (Image, None, vec![], Err("empty")),
        ];
        for (kind, declared, bytes, want) in cases {
            match (inspect(kind, declared, &bytes), want) {
                (Ok(i), Ok(t)) => assert_eq!(i.media_type, t),
                (Err(e), Err(part)) => assert!(e.contains(part), "{e} lacks {part}"),
                (got, want) => panic!("{got:?} but wanted {want:?}"),
            }
        }
    }

    #[test]
    fn earlier_references_still_read() {
        let a: Attachment = serde_json::from_str(r#"{"type":"image","url":"https://x/y.png"}"#).unwrap();
        assert_eq!(a.kind, AttachmentKind::Image);
        assert_eq!(a.url.as_deref(), Some("https://x/y.png"));
        assert!(a.sha256.is_empty());
    }
}
