//! What the process reports about itself: the Prometheus recorder behind `GET /metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) of every `_seconds` histogram: a fast API call to a slow model.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];

/// Installs the process's metrics recorder (before the engine starts, so its descriptions
/// are kept); `None` if one is installed already.
pub fn install_metrics() -> Option<PrometheusHandle> {
    let b = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS).ok()?;
    match b.install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: a recorder is installed already");
            None
        }
    }
}

/// Where traces go: from `[telemetry]`, else the standard `OTEL_EXPORTER_OTLP_*` variables.
#[derive(Clone, Debug, Default)]
pub struct TraceExport {
    /// The collector's base URL (`http://collector:4318` for HTTP, `:4317` for gRPC).
    pub endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`.
    pub protocol: Option<String>,
    pub service_name: String,
    pub node_id: String,
}

/// The spans' ids where herm planned them (derived from the journal: see
/// `herm_engine::spans`), random otherwise.
#[derive(Debug)]
struct JournalIds(opentelemetry_sdk::trace::RandomIdGenerator);

impl opentelemetry_sdk::trace::IdGenerator for JournalIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        herm_engine::spans::planned_trace_id().unwrap_or_else(|| self.0.new_trace_id())
    }
    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        herm_engine::spans::planned_span_id().unwrap_or_else(|| self.0.new_span_id())
    }
}

/// Installs the OTLP exporter when one is configured (the config file's endpoint, or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
/// `OTEL_SDK_DISABLED=true`. Returns the provider to flush at shutdown; `None` when tracing
/// stays off (the default), in which case no span is ever built.
pub fn install_tracing(t: &TraceExport) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let from_env = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
    if t.endpoint.is_none() && from_env.is_none() {
        return Ok(None);
    }
    let protocol = t
        .protocol
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    let batch = || {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_scheduled_delay(std::time::Duration::from_millis(500))
            .build()
    };
    // HTTP exports from the SDK's own thread with a blocking client, off the runtime that
    // runs agents; gRPC (tonic) needs the runtime, so its batches are sent from a task.
    let builder = opentelemetry_sdk::trace::SdkTracerProvider::builder();
    let builder = match protocol.as_str() {
        "grpc" => {
            let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(e) = &t.endpoint {
                b = b.with_endpoint(e.clone());
            }
            let exporter = b.build()?;
            builder.with_span_processor(
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .with_batch_config(batch())
                .build(),
            )
        }
        "http/protobuf" => {
            let client = std::thread::spawn(|| reqwest::blocking::Client::builder().build())
                .join()
                .map_err(|_| anyhow::anyhow!("the OTLP HTTP client could not be built"))??;
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(Protocol::HttpBinary);
            if let Some(e) = &t.endpoint {
                // A base URL, as the environment variable takes it: the signal's path follows.
                let e = e.trim_end_matches('/');
                b = b.with_endpoint(if e.ends_with("/v1/traces") { e.to_owned() } else { format!("{e}/v1/traces") });
            }
            let exporter = b.build()?;
            builder.with_span_processor(
                opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).with_batch_config(batch()).build(),
            )
        }
        other => anyhow::bail!("unknown OTLP protocol `{other}` (expected http/protobuf or grpc)"),
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(env("OTEL_SERVICE_NAME").unwrap_or_else(|| t.service_name.clone()))
        .with_attribute(opentelemetry::KeyValue::new("service.instance.id", t.node_id.clone()))
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = builder.with_id_generator(JournalIds(Default::default())).with_resource(resource).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    herm_engine::spans::enable(true);
    tracing::info!(protocol = %protocol, "exporting traces over OTLP");
    Ok(Some(provider))
}
