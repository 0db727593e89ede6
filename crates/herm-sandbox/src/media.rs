//! Reading an image out of the workspace for a model to look at, or a PDF page rendered as
//! one. The path is confined like every file operation (see [`crate::files`]). What is sent
//! is decided from the file's size and header ([`plan`], pure): a small image as it is, a
//! large one shrunk to fit, a PDF page rendered, anything else refused. Decoding and
//! scaling run inside the sandbox (its `ffmpeg` and `pdftoppm`), under the sandbox's limits,
//! never in herm's own process.

use crate::files::{MISSING, WRONG_KIND, relative, resolve, run};
use crate::*;
use herm_types::attachment::{image_size, sniff};

/// Longest side of an image sent to a model (larger ones are scaled down: providers scale
/// them anyway, and the tokens and bytes are saved).
pub const MAX_EDGE: u32 = 1568;
/// Largest image sent as it is (its base64 stays under the 5 MB providers accept).
pub const MAX_SEND: u64 = 3_500_000;
/// Largest file looked at at all.
pub const MAX_SOURCE: u64 = 64 * 1024 * 1024;
/// Most pixels decoded to scale an image down (a larger one may be a decompression bomb).
pub const MAX_PIXELS: u64 = 100_000_000;
/// How much of the file is read to decide (a JPEG's frame header may follow large metadata).
const HEAD: usize = 256 * 1024;

/// What to do with a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Send the file's bytes.
    AsIs,
    /// Scale it down to [`MAX_EDGE`] and send it as a JPEG.
    Shrink,
    /// Render one page of the PDF as a PNG.
    RenderPage,
    Refuse(String),
}

/// Decides from the file's size and its first bytes.
pub fn plan(size: u64, head: &[u8]) -> Plan {
    if size > MAX_SOURCE {
        return Plan::Refuse(format!(
            "the file is {} MB; files over {} MB are not viewed: make a smaller copy first (for example with ffmpeg)",
            size / 1_000_000,
            MAX_SOURCE / 1024 / 1024
        ));
    }
    match sniff(head) {
        Some("application/pdf") => Plan::RenderPage,
        Some(_) => match image_size(head) {
            Some((w, h)) if u64::from(w) * u64::from(h) > MAX_PIXELS => Plan::Refuse(format!(
                "the image is {w}x{h} pixels, more than {} million: make a smaller copy first",
                MAX_PIXELS / 1_000_000
            )),
            Some((w, h)) if w.max(h) <= MAX_EDGE && size <= MAX_SEND => Plan::AsIs,
            // An unreadable header is left to the decoder, which refuses what it cannot read.
            _ => Plan::Shrink,
        },
        None => Plan::Refuse("the file is not a PNG, JPEG, GIF or WebP image, nor a PDF".into()),
    }
}

/// An image ready for a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Viewed {
    pub bytes: Vec<u8>,
    /// What was done: `original`, `scaled from WxH`, `page N of M`.
    pub note: String,
}

/// The image at `path` (or page `page` of a PDF, from 1), planned by [`plan`].
pub async fn view(sb: &dyn Sandbox, dep: &DeploymentId, path: &str, page: u32) -> Result<Viewed> {
    let rel = relative(path)?;
    let head_script = format!(
        "{}[ -e \"$p\" ] || exit {MISSING}; [ -f \"$p\" ] || exit {WRONG_KIND}; stat -c %s -- \"$p\"; head -c {HEAD} -- \"$p\"",
        resolve(&rel)
    );
    let out = run(sb, dep, head_script, None, path).await?;
    let nl = out.iter().position(|b| *b == b'\n').ok_or_else(|| Error::Failed("could not read the file".into()))?;
    let size: u64 = String::from_utf8_lossy(&out[..nl]).trim().parse().map_err(|_| Error::Failed("bad size".into()))?;
    let head = &out[nl + 1..];
    let (script, note) = match plan(size, head) {
        Plan::Refuse(why) => return Err(Error::Failed(why)),
        Plan::AsIs => ("cat -- \"$p\"".to_owned(), "original".to_owned()),
        Plan::Shrink => {
            let dims = image_size(head).map(|(w, h)| format!(" from {w}x{h}")).unwrap_or_default();
            (
                format!(
                    "command -v ffmpeg >/dev/null || {{ echo 'this sandbox has no ffmpeg to scale the image down' >&2; exit 1; }}; \
                     ffmpeg -nostdin -v error -i \"$p\" -frames:v 1 \
                     -vf \"scale=w='min({MAX_EDGE},iw)':h='min({MAX_EDGE},ih)':force_original_aspect_ratio=decrease\" \
                     -f image2pipe -c:v mjpeg -q:v 3 -"
                ),
                format!("scaled down{dims} to at most {MAX_EDGE} px, JPEG"),
            )
        }
        Plan::RenderPage => (
            format!(
                "command -v pdftoppm >/dev/null || {{ echo 'this sandbox has no pdftoppm to render PDF pages' >&2; exit 1; }}; \
                 n=$(pdfinfo -- \"$p\" 2>/dev/null | sed -n 's/^Pages: *//p'); \
                 [ -n \"$n\" ] && [ {page} -gt \"$n\" ] && {{ echo \"the PDF has $n pages\" >&2; exit 1; }}; \
                 echo \"$n\" >&2; pdftoppm -f {page} -l {page} -singlefile -scale-to {MAX_EDGE} -png -- \"$p\""
            ),
            format!("page {page} of the PDF, rendered as PNG"),
        ),
    };
    let pdf = note.starts_with("page");
    let req = ExecRequest {
        command: format!("{}{script}", resolve(&rel)),
        cwd: None,
        timeout: Duration::from_secs(60),
        stdin: None,
    };
    let out = sb.exec(dep, req, &mut |_, _| {}).await?;
    if out.exit_code != Some(0) || out.stdout.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr).trim().chars().take(300).collect::<String>();
        return Err(Error::Failed(if why.is_empty() { "the image could not be read".into() } else { why }));
    }
    let pages = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let note = if pdf && pages.parse::<u32>().is_ok() {
        format!("page {page} of {pages} of the PDF, rendered as PNG")
    } else {
        note
    };
    Ok(Viewed { bytes: out.stdout, note })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        v.extend(w.to_be_bytes());
        v.extend(h.to_be_bytes());
        v
    }

    #[test]
    fn plans() {
        let refused = |p: Plan, part: &str| matches!(p, Plan::Refuse(m) if m.contains(part));
        assert_eq!(plan(10_000, &png(800, 600)), Plan::AsIs);
        assert_eq!(plan(10_000, &png(4000, 3000)), Plan::Shrink);
        assert_eq!(plan(MAX_SEND + 1, &png(800, 600)), Plan::Shrink);
        assert_eq!(plan(50_000_000, &png(5000, 5000)), Plan::Shrink);
        assert_eq!(plan(10_000, b"\x89PNG\r\n\x1a\ntruncated"), Plan::Shrink);
        assert_eq!(plan(10_000, b"%PDF-1.7"), Plan::RenderPage);
        assert!(refused(plan(MAX_SOURCE + 1, &png(10, 10)), "not viewed"));
        assert!(refused(plan(1_000, &png(20_000, 20_000)), "pixels"));
        assert!(refused(plan(1_000, b"#!/bin/sh"), "not a PNG"));
    }
}
