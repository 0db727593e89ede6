//! `view_image`: the agent looks at an image in its workspace (or a page of a PDF). The file
//! is read, or scaled down or rendered, inside the sandbox ([`herm_sandbox::media`]); the
//! result is stored like a message attachment and returned to the model as an image, while
//! the log keeps only its reference.

use crate::Result;
use crate::tools::ToolOutput;
use crate::tools::source::{CallContext, Ran, ToolRunner};
use serde_json::{Value, json};

pub const NAME: &str = "view_image";

pub const DESCRIPTION: &str = "Look at an image file in /workspace (PNG, JPEG, GIF, WebP), or at one page of a PDF: \
you receive the picture itself. Large images are scaled down to at most 1568 pixels a side.";

pub fn schema() -> Value {
    json!({"type": "object", "properties": {
        "path": {"type": "string", "description": "The file, relative to /workspace."},
        "page": {"type": "integer", "minimum": 1, "description": "For a PDF: the page to look at (default 1)."}
    }, "required": ["path"]})
}

pub struct ViewImage;

#[async_trait::async_trait]
impl ToolRunner for ViewImage {
    async fn run(&self, cx: &CallContext<'_>, args: &Value) -> Result<Ran> {
        let (engine, dep) = (cx.engine, cx.dep);
        let Some(path) = args.get("path").and_then(Value::as_str) else {
            return Ok(Ran::output(ToolOutput::error("`path` (a string) is required")));
        };
        let page = args.get("page").and_then(Value::as_u64).unwrap_or(1).clamp(1, 100_000) as u32;
        let (sb, _in_use) = match engine.use_sandbox(&dep.id, &dep.spec).await {
            Ok(x) => x,
            Err(e) => return Ok(Ran::output(ToolOutput::error(format!("the sandbox is not available: {e}")))),
        };
        let viewed = match herm_sandbox::media::view(sb.as_ref(), &dep.id, path, page).await {
            Ok(v) => v,
            Err(e) => return Ok(Ran::output(ToolOutput::error(format!("cannot view `{path}`: {e}")))),
        };
        let name = path.rsplit('/').next().map(str::to_owned);
        let size = viewed.bytes.len();
        let r = match engine.keep_image(dep, cx.thread, viewed.bytes, None, name).await {
            Ok(r) => r,
            Err(crate::Error::InvalidAttachment(e)) => {
                return Ok(Ran::output(ToolOutput::error(format!("cannot view `{path}`: {e}"))));
            }
            Err(e) => return Err(e),
        };
        let dims = match (r.width, r.height) {
            (Some(w), Some(h)) => format!("{w}x{h} "),
            _ => String::new(),
        };
        let mut out = ToolOutput::ok(format!(
            "{path}: {dims}{} ({}, {size} bytes); the image follows.",
            r.media_type, viewed.note
        ));
        out.attachments.push(r);
        Ok(Ran::output(out))
    }
}
