//! Traces: with an OTLP endpoint configured, a scripted run with a tool call reaches a real
//! OTLP/HTTP receiver as one trace (the run's `invoke_agent` root, a `chat` span per model
//! call, an `execute_tool` span per tool call) with GenAI attribute names, the same trace and
//! span ids its events carry, HTTP server spans that join a caller's `traceparent`, JSON log
//! lines carrying the run's trace id, and no secret anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_trace_with_genai_attributes_and_no_secret() {
    let receiver = OtlpReceiver::start().await;
    let config = format!("{CONFIG}\n[telemetry]\notlp_endpoint = \"{}\"\n", receiver.url());
    let script = vec![
        Reply::tool("lookup", json!({"q": "a"})),
        Reply::text(&["done"]),
        Reply::tool("lookup", json!({"q": "b"})),
    ];
    let model = FakeModel::start(script).await;
    let env = setup_env(model, Wire::Anthropic, json!({}), &config, &[("HERM_LOG_FORMAT", "json")]).await;
    let run = run_to_end(&env, "look it up").await;

    let spans = receiver.wait_for("run span", |s| s.iter().any(|x| x.name == "invoke_agent")).await;
    let log = env.herm.thread_log(&env.thread).await;
    let of =
        |t: &str| log.iter().filter(|e| e["type"] == t && e["run_id"] == run.as_str()).cloned().collect::<Vec<_>>();
    let trace = of("run_status")[0]["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(trace.len(), 32);

    let root = spans.iter().find(|s| s.name == "invoke_agent").unwrap();
    assert_eq!((root.trace_id.as_str(), root.parent_span_id.as_str()), (trace.as_str(), ""), "the run is the root");
    assert_eq!(root.span_id, of("run_status")[0]["span_id"].as_str().unwrap());
    assert_eq!(root.attr("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(root.attr("herm.run.status"), Some("completed"));
    assert_eq!(root.attr("herm.run.id"), Some(run.as_str()));
    assert_eq!(root.attr("gen_ai.conversation.id"), Some(env.thread.as_str()));
    assert_eq!(root.attr("gen_ai.usage.input_tokens"), Some("50"));
    assert_eq!(root.resource.get("service.name").map(String::as_str), Some("herm"));

    let chats: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "chat m1").collect();
    assert_eq!(chats.len(), 2, "{spans:#?}");
    let calls = of("model_call");
    for (span, event) in chats.iter().zip(&calls) {
        assert_eq!((span.trace_id.as_str(), span.parent_span_id.as_str()), (trace.as_str(), root.span_id.as_str()));
        assert_eq!(span.kind, 3, "a model call is a client span");
        assert_eq!(span.attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(span.attr("gen_ai.provider.name"), Some("fake"));
        assert_eq!(span.attr("gen_ai.request.model"), Some("m1"));
        assert!(span.end_unix_nano >= span.start_unix_nano);
        // The event names the span it became.
        assert!(calls.iter().any(|c| c["span_id"] == span.span_id.as_str()), "{event}");
    }
    let inputs: Vec<&str> = chats.iter().filter_map(|s| s.attr("gen_ai.usage.input_tokens")).collect();
    assert!(inputs.contains(&"30") && inputs.contains(&"20"), "{inputs:?}");

    let tool = spans.iter().find(|s| s.name == "execute_tool lookup").unwrap();
    assert_eq!(tool.parent_span_id, root.span_id);
    assert_eq!(tool.attr("gen_ai.tool.name"), Some("lookup"));
    assert_eq!(tool.attr("herm.tool.outcome"), Some("ok"));
    assert_eq!(tool.span_id, of("tool_result")[0]["span_id"].as_str().unwrap());
    assert_eq!(tool.span_id, of("tool_call")[0]["span_id"].as_str().unwrap(), "call and result share the span");

    // HTTP requests are server spans; a caller's traceparent is joined.
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (s, _, _) = env
        .herm
        .request_with_headers("GET", &format!("/v1/deployments/{}", env.dep), &[("traceparent", parent)], None)
        .await;
    assert_eq!(s, 200);
    let spans = receiver
        .wait_for("joined server span", |s| {
            s.iter().any(|x| x.trace_id == "0af7651916cd43dd8448eb211c80319c" && x.parent_span_id == "b7ad6b7169203331")
        })
        .await;
    let server = spans.iter().find(|x| x.trace_id == "0af7651916cd43dd8448eb211c80319c").unwrap();
    assert_eq!((server.name.as_str(), server.kind), ("GET /v1/deployments/{deployment_id}", 2));
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert!(spans.iter().any(|x| x.name == "POST /v1/deployments/{deployment_id}/messages"));

    // A failing run: its root span is an error, and the log line about it carries its trace id.
    env.herm.ok("PATCH", &format!("/v1/deployments/{}", env.dep), &json!({"limits": {"max_run_steps": 1}}), 200).await;
    let r = env.send("again").await;
    let failed = r["run_id"].as_str().unwrap().to_owned();
    env.herm.wait_run(&env.dep, &failed, Duration::from_secs(20)).await;
    let spans = receiver
        .wait_for("failed run span", |s| {
            s.iter().any(|x| x.name == "invoke_agent" && x.attr("herm.run.id") == Some(failed.as_str()))
        })
        .await;
    let root =
        spans.iter().find(|x| x.name == "invoke_agent" && x.attr("herm.run.id") == Some(failed.as_str())).unwrap();
    assert_eq!((root.status_code, root.attr("error.type")), (2, Some("max_steps_exceeded")));
    let logs = env.herm.log_text();
    let line = logs.lines().find(|l| l.contains("run failed") && l.contains(&root.trace_id));
    let line: Value = serde_json::from_str(line.expect("a JSON log line with the run's trace id")).unwrap();
    assert_eq!(line["span"]["trace_id"], root.trace_id.as_str());

    // No secret in any span or log line.
    for s in &spans {
        let all = format!("{} {:?} {:?}", s.name, s.attributes, s.resource);
        for canary in [TOKEN, PROVIDER_KEY] {
            assert!(!all.contains(canary), "a secret in span {}", s.name);
        }
    }
    for canary in [TOKEN, PROVIDER_KEY] {
        assert!(!logs.contains(canary), "a secret in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_grpc_collector() {
    let receiver = OtlpReceiver::start_grpc().await;
    let config = format!("{CONFIG}\n[telemetry]\notlp_endpoint = \"{}\"\notlp_protocol = \"grpc\"\n", receiver.url());
    let model = FakeModel::start(vec![Reply::text(&["hello"])]).await;
    let env = setup_env(model, Wire::OpenAi, json!({}), &config, &[]).await;
    let run = run_to_end(&env, "hi").await;
    let spans = receiver
        .wait_for("run span over gRPC", |s| {
            s.iter().any(|x| x.name == "invoke_agent" && x.attr("herm.run.id") == Some(run.as_str()))
        })
        .await;
    let root = spans.iter().find(|x| x.name == "invoke_agent").unwrap();
    let chat = spans.iter().find(|x| x.name == "chat m1").expect("a chat span");
    assert_eq!(chat.parent_span_id, root.span_id);
    assert_eq!(chat.attr("gen_ai.usage.output_tokens"), Some("10"));
}
