//! Skills: inline and URL sources, progressive disclosure (names and descriptions in the
//! system prompt, bodies through `load_skill`), the Skills API, and bad skills → 422.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

const REFUNDS: &str = "---\nname: refunds\ndescription: How to issue a refund.\n---\n# Refunds\n1. Check the order is paid.\n2. Refund within 30 days.\n";
const TONE: &str = "---\nname: tone\ndescription: The brand voice.\n---\nBe warm and brief.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_are_listed_and_loaded_on_demand() {
    let script = vec![Reply::tool("load_skill", json!({"name": "refunds"})), Reply::text(&["Refund issued."])];
    let model = FakeModel::start(script).await;
    let (h, _dir) = start_herm().await;
    let web = Connector::start().await;
    web.serve("/skills/tone/SKILL.md", TONE);
    h.ok("PUT", "/v1/providers/fake", &json!({"kind": "anthropic", "base_url": model.anthropic_url()}), 200).await;
    let d = h
        .deploy(&json!({
            "customer_id": "c", "name": "n", "system_prompt": "You help customers.", "model": "fake/m",
            "skills": [
                {"name": "refunds", "source": "inline", "content": REFUNDS},
                {"name": "tone", "source": "url", "url": web.url("/skills/tone/SKILL.md")}
            ]
        }))
        .await;
    let dep = d["deployment_id"].as_str().unwrap().to_owned();
    let r = h.ok("POST", &format!("/v1/deployments/{dep}/messages"), &json!({"content": "refund order 7"}), 202).await;
    let run = h.wait_run(&dep, r["run_id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!(run["status"], "completed");
    let first = &model.attempts()[0].body;
    let system = first["system"].as_str().unwrap();
    assert!(system.starts_with("You help customers."), "{system}");
    assert!(
        system.contains("- refunds: How to issue a refund.") && system.contains("- tone: The brand voice."),
        "{system}"
    );
    assert!(!system.contains("Refund within 30 days"), "bodies are not in the prompt");
    assert!(first["tools"].as_array().unwrap().iter().any(|t| t["name"] == "load_skill"));
    let second = model.attempts()[1].body.to_string();
    assert!(second.contains("Refund within 30 days"), "the body was loaded on demand");

    // The Skills API.
    let (_, list) = h.get(&format!("/v1/deployments/{dep}/skills")).await;
    let list = list["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|s| s["skill_id"].as_str().unwrap().starts_with("skl_") && s.get("content").is_none()));
    let tone_id = list.iter().find(|s| s["name"] == "tone").unwrap()["skill_id"].as_str().unwrap().to_owned();
    let (_, one) = h.get(&format!("/v1/deployments/{dep}/skills/{tone_id}")).await;
    assert_eq!((one["source"].as_str(), one["content"].as_str()), (Some("url"), Some(TONE)));
    let put = h
        .ok("PUT", &format!("/v1/deployments/{dep}/skills/{tone_id}"), &json!({"name": "tone", "source": "inline", "content": "---\nname: tone\ndescription: Formal now.\n---\nBe formal.\n"}), 200)
        .await;
    assert_eq!((put["skill_id"].as_str(), put["description"].as_str()), (Some(tone_id.as_str()), Some("Formal now.")));
    let new = h
        .ok(
            "POST",
            &format!("/v1/deployments/{dep}/skills"),
            &json!({"name": "faq", "source": "inline", "content": "---\nname: faq\ndescription: Answers.\n---\nQ&A\n"}),
            201,
        )
        .await;
    assert_eq!(new["description"], "Answers.");
    let (s, _) =
        h.request("DELETE", &format!("/v1/deployments/{dep}/skills/{tone_id}"), Some(&h.admin_key.clone()), None).await;
    assert_eq!(s, 204);
    let (_, list) = h.get(&format!("/v1/deployments/{dep}/skills")).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["refunds", "faq"]);

    // Bad skills are refused with `invalid_skill`, naming the skill.
    let bad = [
        json!({"name": "x", "source": "inline", "content": "no front matter"}),
        json!({"name": "x", "source": "inline", "content": "---\nname: x\n---\nmissing description"}),
        json!({"name": "x", "source": "url", "url": web.url("/skills/missing/SKILL.md")}),
        json!({"name": "x", "source": "url", "url": "http://127.0.0.1:9/unreachable"}),
    ];
    for b in bad {
        let (s, v) = h.post(&format!("/v1/deployments/{dep}/skills"), &b).await;
        assert_eq!((s, v["code"].as_str()), (422, Some("invalid_skill")), "{b}: {v}");
    }
    let (s, v) = h.post("/v1/deployments", &json!({"customer_id": "c", "name": "n", "system_prompt": "s", "skills": [{"name": "x", "source": "inline", "content": "nope"}]})).await;
    assert_eq!(
        (s, v["code"].as_str(), v["errors"][0]["path"].as_str()),
        (422, Some("invalid_skill"), Some("skills[0]"))
    );
    let (s, _) = h
        .post(
            &format!("/v1/deployments/{dep}/skills"),
            &json!({"name": "refunds", "source": "inline", "content": REFUNDS}),
        )
        .await;
    assert_eq!(s, 409, "names are unique");
}
