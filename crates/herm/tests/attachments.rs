//! Attachments reach the model: an uploaded image, an image by URL and a PDF arrive at the
//! fake model in each provider's exact wire shape; the log and the stream carry references
//! only; a model that takes no images refuses them with 422 before anything runs; a URL is
//! fetched once, even across a `kill -9`; and the agent looks at an image it made in its
//! sandbox, with path escapes refused and a 50 MB image scaled down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use base64::Engine as _;
use common::*;

/// A valid 1x1 PNG.
const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(PNG_B64).unwrap()
}

fn config() -> String {
    // The URL server in these tests is on loopback, which herm refuses by default.
    format!("{CONFIG}\n[attachments]\nallow_private_urls = true\n")
}

/// Lets model `m1` take images and documents (and optionally get URLs forwarded).
async fn allow_media(env: &Env, wire: Wire, forward_urls: bool) {
    env.put_provider(
        wire,
        json!({"forward_urls": forward_urls, "models": {"m1": {"attachments": ["image", "document"]}}}),
    )
    .await;
}

async fn send_with(env: &Env, content: &str, attachments: Value) -> (u16, Value) {
    env.herm
        .post(
            &format!("/v1/deployments/{}/messages", env.dep),
            &json!({"content": content, "attachments": attachments}),
        )
        .await
}

async fn finish(env: &Env, sent: &Value) {
    let r = env.herm.wait_run(&env.dep, sent["run_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(r["status"], "completed", "{r}");
}

/// The user content of the first request the model received.
fn first_user_content(env: &Env) -> Value {
    let a = env.model.attempts();
    let body = &a.first().expect("no model request").body;
    let msgs = body["messages"].as_array().unwrap();
    msgs.iter().find(|m| m["role"] == "user").unwrap()["content"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_documents_reach_an_anthropic_model_as_base64_blocks() {
    let env = setup_with(vec![Reply::text(&["It looks washed out."])], Wire::Anthropic, json!({}), &config()).await;
    allow_media(&env, Wire::Anthropic, false).await;
    env.connector.serve_bytes("/thumb.png", "image/png", png());
    let (status, sent) = send_with(
        &env,
        "why does this thumbnail look washed out?",
        json!([
            {"type": "image", "data": PNG_B64, "media_type": "image/png", "name": "upload.png"},
            {"type": "image", "url": env.connector.url("/thumb.png?sig=abc")},
            {"type": "document", "data": b64(PDF), "media_type": "application/pdf", "name": "brief.pdf"}
        ]),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    finish(&env, &sent).await;
    let content = first_user_content(&env);
    let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}});
    assert_eq!(content[0], image, "{content}");
    assert_eq!(content[1], image, "the URL's image is sent as the bytes herm fetched: {content}");
    assert_eq!(
        content[2],
        json!({"type": "document", "title": "brief.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}})
    );
    assert_eq!(content[3], json!({"type": "text", "text": "why does this thumbnail look washed out?"}));
    assert_eq!(env.connector.fetches("/thumb.png"), 1);

    // The log holds references (kind, type, size, hash, id, name), never the bytes.
    let log = env.herm.thread_log(&env.thread).await;
    let msg = log.iter().find(|e| e["type"] == "message").unwrap();
    let refs = msg["attachments"].as_array().unwrap();
    assert_eq!(refs.len(), 3);
    assert!(!msg.to_string().contains(PNG_B64), "bytes in the log: {msg}");
    assert!(msg.to_string().len() < 2_000, "the log entry should be small: {msg}");
    assert_eq!(refs[0]["media_type"], "image/png");
    assert_eq!((refs[0]["width"].as_u64(), refs[0]["height"].as_u64()), (Some(1), Some(1)));
    assert_eq!(refs[0]["name"], "upload.png");
    assert_eq!(refs[1]["name"], "thumb.png");
    assert_eq!(refs[0]["sha256"], refs[1]["sha256"], "the same bytes have the same hash");
    assert_eq!(refs[2]["size"].as_u64(), Some(PDF.len() as u64));
    // The same reference in the stream.
    let mut sse = env.thread_stream(Some("0")).await;
    let frames = sse.until(Duration::from_secs(10), |f| f.data["type"] == "message").await;
    let seen = frames.last().expect("no message in the stream");
    assert_eq!(seen.data["attachments"], msg["attachments"]);
    // The stored bytes can be downloaded; another deployment cannot reach them.
    let id = refs[2]["attachment_id"].as_str().unwrap();
    let download = |dep: String| {
        let (url, key) =
            (format!("{}/v1/deployments/{dep}/attachments/{id}", env.herm.url), env.herm.admin_key.clone());
        async move {
            let r = reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap();
            let ty = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ty, r.bytes().await.unwrap().to_vec())
        }
    };
    let (code, ty, body) = download(env.dep.clone()).await;
    assert_eq!((code, ty.as_deref(), body.as_slice()), (200, Some("application/pdf"), PDF));
    let other = env.herm.deploy(&json!({"customer_id": "c2", "name": "other", "system_prompt": "s"})).await;
    let (code, _, _) = download(other["deployment_id"].as_str().unwrap().to_owned()).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_documents_reach_an_openai_model_as_content_parts() {
    let env = setup_with(vec![Reply::text(&["Seen."])], Wire::OpenAi, json!({}), &config()).await;
    allow_media(&env, Wire::OpenAi, false).await;
    env.connector.serve_bytes("/thumb.png", "image/png", png());
    // Through the thread's user events this time.
    let (status, sent) = env
        .herm
        .post(
            &format!("/v1/threads/{}/events", env.thread),
            &json!({"events": [{"type": "user.message", "content": "look", "attachments": [
                {"type": "image", "data": PNG_B64},
                {"type": "image", "url": env.connector.url("/thumb.png")},
                {"type": "document", "data": b64(PDF), "name": "brief.pdf"}
            ]}]}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    finish(&env, &sent["results"][0]).await;
    let content = first_user_content(&env);
    let data_url = format!("data:image/png;base64,{PNG_B64}");
    assert_eq!(content[0], json!({"type": "text", "text": "look"}));
    assert_eq!(content[1], json!({"type": "image_url", "image_url": {"url": data_url}}));
    assert_eq!(content[2], json!({"type": "image_url", "image_url": {"url": data_url}}));
    assert_eq!(
        content[3],
        json!({"type": "file", "file": {"filename": "brief.pdf", "file_data": format!("data:application/pdf;base64,{}", b64(PDF))}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_fetches_urls_gets_the_url_form() {
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        let env = setup_with(vec![Reply::text(&["Seen."])], wire, json!({}), &config()).await;
        allow_media(&env, wire, true).await;
        env.connector.serve_bytes("/thumb.png", "image/png", png());
        let url = env.connector.url("/thumb.png");
        let (status, sent) = send_with(&env, "look", json!([{"type": "image", "url": url}])).await;
        assert_eq!(status, 202, "{sent}");
        finish(&env, &sent).await;
        let content = first_user_content(&env);
        let want = match wire {
            Wire::Anthropic => json!({"type": "image", "source": {"type": "url", "url": url}}),
            Wire::OpenAi => json!({"type": "image_url", "image_url": {"url": url}}),
        };
        assert!(content.as_array().unwrap().contains(&want), "{wire:?}: {content}");
        // Herm still fetched it once, to check it and keep it.
        assert_eq!(env.connector.fetches("/thumb.png"), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_reach_the_model_is_refused_before_anything_runs() {
    let env = setup_with(vec![Reply::text(&["never"])], Wire::Anthropic, json!({}), &config()).await;
    env.connector.serve_bytes("/thumb.png", "image/png", png());
    let url = env.connector.url("/thumb.png");
    // `m1` is a model herm does not know: text only, unless its provider says otherwise.
    let (status, body) = send_with(&env, "look", json!([{"type": "image", "url": url}])).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "unsupported_attachment");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("fake/m1") && detail.contains("image"), "{detail}");
    assert_eq!(env.connector.fetches("/thumb.png"), 0, "nothing is downloaded for a refused kind");
    // Audio and video go to no model yet, whatever the provider settings claim.
    let pk = env.herm.ok("GET", "/v1/secrets", &Value::Null, 200).await["data"][0]["secret_id"].clone();
    let (status, body) = env
        .herm
        .put(
            "/v1/providers/fake",
            &json!({"kind": "anthropic", "base_url": env.model.anthropic_url(), "api_key_secret": pk,
                    "models": {"m1": {"attachments": ["image", "audio"]}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    allow_media(&env, Wire::Anthropic, false).await;
    let (status, body) = send_with(&env, "listen", json!([{"type": "audio", "data": "AAAA"}])).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("unsupported_attachment")), "{body}");

    // Bytes that are not what they claim, bad base64, a private address by default, too
    // many attachments: each a clear 4xx.
    let gif = b64(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    let cases = vec![
        (json!([{"type": "image", "data": gif, "media_type": "image/png"}]), "invalid_attachment", "not the declared"),
        (json!([{"type": "image", "data": "not base64!"}]), "invalid_attachment", "base64"),
        (json!([{"type": "image", "data": b64(PDF)}]), "invalid_attachment", "not a `image`"),
        (json!([{"type": "image", "data": b64(b"<svg/>")}]), "invalid_attachment", "none of"),
        // The connector answers any other path with JSON: the bytes decide, not the URL's name.
        (json!([{"type": "image", "url": env.connector.url("/other.png")}]), "invalid_attachment", "none of"),
        // Shapes wrong on their face are 400s.
        (json!([{"type": "image", "url": "ftp://example.com/a.png"}]), "validation_error", "http"),
        (json!([{"type": "image"}]), "validation_error", "`url` or `data`"),
        (json!([{"type": "image", "data": PNG_B64, "media_type": "image/tiff"}]), "validation_error", "not supported"),
        (
            json!((0..11).map(|_| json!({"type": "image", "data": PNG_B64})).collect::<Vec<_>>()),
            "validation_error",
            "at most 10",
        ),
    ];
    for (attachments, code, part) in cases {
        let (status, body) = send_with(&env, "look", attachments.clone()).await;
        let want = if code == "validation_error" { 400 } else { 422 };
        assert_eq!((status, body["code"].as_str()), (want, Some(code)), "{attachments}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(part), "{attachments}: {body}");
    }
    // No run started for any of them.
    let log = env.herm.thread_log(&env.thread).await;
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(env.model.request_count(), 0);

    // Without `allow_private_urls`, herm never fetches from its own network.
    let (herm, _dir) = start_herm().await;
    herm.ok(
        "PUT",
        "/v1/providers/fake",
        &json!({"kind": "anthropic", "base_url": env.model.anthropic_url(), "api_key_env": "NONE",
                "models": {"m1": {"attachments": ["image"]}}}),
        200,
    )
    .await;
    let d = herm.deploy(&json!({"customer_id": "c", "name": "n", "system_prompt": "s", "model": "fake/m1"})).await;
    for url in [url.clone(), "http://localhost:9/a.png".into(), "http://169.254.169.254/latest/meta-data".into()] {
        let (status, body) = herm
            .post(
                &format!("/v1/deployments/{}/messages", d["deployment_id"].as_str().unwrap()),
                &json!({"content": "look", "attachments": [{"type": "image", "url": url}]}),
            )
            .await;
        assert_eq!((status, body["code"].as_str()), (422, Some("invalid_attachment")), "{url}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("private"), "{url}: {body}");
    }
    assert_eq!(env.connector.fetches("/thumb.png"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_keeps_its_attachment_without_a_second_download() {
    let script = vec![Reply::text(&["Looking", " closely."]).stall_first()];
    let mut env = setup_with(script, Wire::Anthropic, json!({}), &config()).await;
    allow_media(&env, Wire::Anthropic, false).await;
    env.connector.serve_bytes("/thumb.png", "image/png", png());
    let (status, sent) =
        send_with(&env, "what is this?", json!([{"type": "image", "url": env.connector.url("/thumb.png")}])).await;
    assert_eq!(status, 202, "{sent}");
    for _ in 0..200 {
        if env.model.request_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    env.herm.kill9().await;
    env.herm.restart().await;
    finish(&env, &sent).await;
    let attempts = env.model.attempts();
    assert!(attempts.len() >= 2, "the model call was not made again");
    let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}});
    for a in &attempts {
        assert_eq!(a.body["messages"][0]["content"][0], image, "{}", a.body);
    }
    assert_eq!(env.connector.fetches("/thumb.png"), 1, "the URL was fetched again after the restart");
}

/// A Python script that writes a PNG of `w`x`h` pixels (random ones if `noise`).
fn make_png(path: &str, w: u32, h: u32, noise: bool) -> String {
    format!(
        r#"python3 - <<'EOF'
import os, struct, zlib
w, h = {w}, {h}
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
if {noise}:
    raw = b''.join(b'\x00' + os.urandom(w * 3) for _ in range(h))
    data = zlib.compress(raw, 0)
else:
    raw = b''.join(b'\x00' + b''.join(bytes([(x * 4) % 256, (y * 4) % 256, 128]) for x in range(w)) for y in range(h))
    data = zlib.compress(raw)
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', data) + chunk(b'IEND', b'')
open('{path}', 'wb').write(png)
EOF"#,
        noise = if noise { "True" } else { "False" }
    )
}

/// A Python script that writes a two-page PDF of coloured rectangles.
fn make_pdf(path: &str) -> String {
    format!(
        r#"python3 - <<'EOF'
pages = [b'1 0 0 rg 20 20 160 60 re f', b'0 0 1 rg 20 20 160 60 re f']
objs = [b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>']
for i, c in enumerate(pages):
    objs.append(b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents %d 0 R >>' % (4 + 2 * i))
    objs.append(b'<< /Length %d >>\nstream\n' % len(c) + c + b'\nendstream')
out, offs = b'%PDF-1.4\n', []
for i, o in enumerate(objs):
    offs.append(len(out))
    out += b'%d 0 obj\n' % (i + 1) + o + b'\nendobj\n'
x = len(out)
out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objs) + 1) + b''.join(b'%010d 00000 n \n' % o for o in offs)
out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(objs) + 1, x)
open('{path}', 'wb').write(out)
EOF"#
    )
}

/// The tool results the model saw in its last request (Anthropic wire).
fn last_tool_results(env: &Env) -> Vec<Value> {
    let a = env.model.attempts();
    let msgs = a.last().unwrap().body["messages"].as_array().unwrap().clone();
    msgs.iter()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_result")
        .collect()
}

fn image_of(result: &Value) -> Option<Vec<u8>> {
    let blocks = result["content"].as_array()?;
    let img = blocks.iter().find(|b| b["type"] == "image")?;
    base64::engine::general_purpose::STANDARD.decode(img["source"]["data"].as_str()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_looks_at_images_it_made_and_cannot_look_outside_its_workspace() {
    let script = vec![
        shell(&format!(
            "{}\n{}\nln -sf /etc/hostname /workspace/link.png",
            make_png("/workspace/thumb.png", 64, 48, false),
            make_pdf("/workspace/brief.pdf")
        )),
        Reply::tool("view_image", json!({"path": "thumb.png"})),
        Reply::tool("view_image", json!({"path": "../etc/hostname"})),
        Reply::tool("view_image", json!({"path": "link.png"})),
        Reply::tool("view_image", json!({"path": "brief.pdf", "page": 2})),
        Reply::tool("view_image", json!({"path": "brief.pdf", "page": 9})),
        shell(&make_png("/workspace/huge.png", 4096, 4096, true)),
        Reply::tool("view_image", json!({"path": "huge.png"})),
        Reply::text(&["The second variation is best."]),
    ];
    let env = setup_with(script, Wire::Anthropic, json!({}), &sandbox_config()).await;
    allow_media(&env, Wire::Anthropic, false).await;
    let tools = env.herm.ok("GET", &format!("/v1/deployments/{}/tools", env.dep), &Value::Null, 200).await;
    assert!(tools.to_string().contains("view_image"), "{tools}");
    run_to_end(&env, "render a thumbnail and look at it").await;

    let results = last_tool_results(&env);
    assert_eq!(results.len(), 8, "{results:?}");
    // The model received exactly the image the agent wrote.
    let (code, written) = env.file("thumb.png").await;
    assert_eq!(code, 200);
    assert_eq!(image_of(&results[1]).expect("no image in the view_image result"), written);
    assert!(results[1]["content"][0]["text"].as_str().unwrap().contains("64x48"), "{}", results[1]);
    // Escapes are refused, by `..` and through a symlink.
    for r in &results[2..4] {
        assert_eq!(r["is_error"], true, "{r}");
        assert!(image_of(r).is_none());
        assert!(r["content"].to_string().contains("escapes the workspace"), "{r}");
    }
    // A PDF page is rendered; a page past the end is a clear error.
    let page = image_of(&results[4]).expect("no rendered page");
    assert!(page.starts_with(b"\x89PNG"), "the page is not a PNG");
    assert!(results[4]["content"][0]["text"].as_str().unwrap().contains("page 2 of 2"), "{}", results[4]);
    assert_eq!(results[5]["is_error"], true, "{}", results[5]);
    assert!(results[5]["content"].to_string().contains("2 pages"), "{}", results[5]);
    // A 50 MB image arrives scaled down to at most 1568 px, as a JPEG of a sendable size.
    let huge = &results[7];
    let small = image_of(huge).unwrap_or_else(|| panic!("the 50 MB image was not viewed: {huge}"));
    assert!(small.starts_with(&[0xFF, 0xD8, 0xFF]), "not a JPEG");
    assert!(small.len() < 3_500_000, "{} bytes", small.len());
    assert!(huge["content"][0]["text"].as_str().unwrap().contains("scaled down from 4096x4096"), "{huge}");
    // The log holds the results' references, not their bytes.
    let log = env.herm.thread_log(&env.thread).await;
    let viewed: Vec<&Value> = log.iter().filter(|e| e["type"] == "tool_result" && e["tool"] == "view_image").collect();
    assert_eq!(viewed[0]["attachments"][0]["media_type"], "image/png");
    assert!(log.iter().all(|e| e.to_string().len() < 20_000), "a log entry carries bytes");
}
