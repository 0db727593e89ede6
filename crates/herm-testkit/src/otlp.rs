//! OTLP trace receivers: over HTTP (`POST /v1/traces`, protobuf) and over gRPC (the
//! `TraceService`), each decoding every span and keeping it, flattened, for tests to inspect.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use parking_lot::Mutex;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One received span.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// 1 internal, 2 server, 3 client (OTLP's numbering).
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
    /// 2 means error.
    pub status_code: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl ReceivedSpan {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attributes.get(k).map(String::as_str)
    }
}

#[derive(Clone)]
pub struct OtlpReceiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    pub addr: std::net::SocketAddr,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| text(&Some(v.clone()))).collect();
            format!("[{}]", items.join(","))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().route("/v1/traces", axum::routing::post(receive)).with_state(spans.clone());
        let addr = crate::serve_local(app).await;
        Self { spans, addr }
    }

    /// The base URL to give as the OTLP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().clone()
    }

    /// The spans received once `done` holds for them (spans arrive in batches, every half
    /// second); panics naming `what` after 10 s.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        for _ in 0..200 {
            let s = self.spans();
            if done(&s) {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no {what} among {:#?}", self.spans());
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>, body: Bytes) -> impl IntoResponse {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/plain")], Vec::new());
    };
    keep(&spans, req);
    let resp = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-protobuf")], resp)
}

/// Flattens every span of an export request into `spans`.
fn keep(spans: &Mutex<Vec<ReceivedSpan>>, req: ExportTraceServiceRequest) {
    let mut out = spans.lock();
    for rs in req.resource_spans {
        let resource: BTreeMap<String, String> = rs
            .resource
            .map(|r| r.attributes.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect())
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(ReceivedSpan {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    kind: s.kind,
                    attributes: s.attributes.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect(),
                    resource: resource.clone(),
                    status_code: s.status.map(|st| st.code).unwrap_or(0),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                });
            }
        }
    }
}

/// The same receiver over OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`
/// on an HTTP/2 listener), keeping spans in the same form.
#[derive(Clone)]
struct GrpcSink(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl OtlpReceiver {
    /// A receiver speaking OTLP/gRPC; [`Self::url`] is its endpoint.
    pub async fn start_grpc() -> Self {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = TraceServiceServer::new(GrpcSink(spans.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            tonic::transport::Server::builder().add_service(svc).serve_with_incoming(incoming).await.unwrap()
        });
        Self { spans, addr }
    }
}
