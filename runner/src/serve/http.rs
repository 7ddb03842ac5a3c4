//! The HTTP side of `serve`: the KServe v2 REST routes and `/metrics` on
//! axum. Handlers never block a runtime thread: they check a request, queue
//! its samples and await the answer on a oneshot channel.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ecoedge_bsp_jetson::MonotonicClock;
use http_body_util::{BodyExt, Limited};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;

use super::kserve::{self, InferRequest};
use super::metrics::{Metrics, Outcome};
use super::{Refusal, SharedQueue};
use crate::inference::Signature;

/// The header of the binary tensor data extension.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// What every handler shares.
pub struct App {
    /// The model's name in URLs.
    pub model: String,
    /// Its inputs and outputs.
    pub signature: Signature,
    /// Where samples go.
    pub queue: Arc<SharedQueue>,
    /// The service's clock (arrival stamps).
    pub clock: MonotonicClock,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Longest a client may take to send a request's headers or body, and
    /// longest an idle connection is kept.
    pub client_timeout: Duration,
}

/// Accepts connections until `stop` completes, then closes the listener,
/// lets every connection finish the request it is in (its answer comes once
/// the loop has served it) and returns when all have closed.
///
/// hyper's HTTP/1 connections, not `axum::serve`, because these need
/// timeouts: a client that sends no request headers within the client
/// timeout, or keeps an idle connection that long, is disconnected, so
/// silent or vanished clients cannot pile up connections. Nagle is off:
/// answers are small and latency is what is measured.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    stop: impl Future<Output = ()>,
) {
    let timeout = app.client_timeout;
    let service = TowerToHyperService::new(router(app));
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little and go on serving.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(TokioIo::new(stream), service.clone());
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // A client that went away mid-request ends its own
                    // connection only.
                    let _ = conn.await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// `{"error": ...}` with `status`.
fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

/// The routes of KServe v2 and `/metrics`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(app)
}

async fn ready(State(app): State<Arc<App>>) -> StatusCode {
    if app.queue.is_closed() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn server_metadata() -> Response {
    axum::Json(json!({
        "name": "ecoedge",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
    .into_response()
}

fn unknown_model(name: &str, app: &App) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "unknown model `{name}` (this server serves `{}`)",
            app.model
        ),
    )
}

async fn model_metadata(State(app): State<Arc<App>>, Path(model): Path<String>) -> Response {
    if model != app.model {
        return unknown_model(&model, &app);
    }
    let list =
        |specs: &[crate::inference::TensorSpec]| -> Vec<crate::inference::tensor::TensorMetadata> {
            specs.iter().map(|s| s.metadata()).collect()
        };
    axum::Json(json!({
        "name": app.model,
        "versions": ["1"],
        "platform": "onnx",
        "inputs": list(&app.signature.inputs),
        "outputs": list(&app.signature.outputs),
    }))
    .into_response()
}

async fn model_metadata_version(
    state: State<Arc<App>>,
    Path((model, _version)): Path<(String, String)>,
) -> Response {
    model_metadata(state, Path(model)).await
}

async fn model_ready(State(app): State<Arc<App>>, Path(model): Path<String>) -> Response {
    if model != app.model {
        return unknown_model(&model, &app);
    }
    if app.queue.is_closed() {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut r = app.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn infer_version(
    state: State<Arc<App>>,
    Path((model, _version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer(state, Path(model), headers, body).await
}

/// `POST .../infer`; a client error (4xx) is counted as invalid.
async fn infer(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = checked_infer(&app, &model, &headers, body).await;
    if r.status().is_client_error() {
        app.metrics.request(Outcome::Invalid);
    }
    r
}

async fn checked_infer(app: &App, model: &str, headers: &HeaderMap, body: Body) -> Response {
    if model != app.model {
        return unknown_model(model, app);
    }
    let bytes = match read_body(app, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Inference-Header-Content-Length is not a length",
                );
            }
        },
    };
    let req = match kserve::parse_infer(
        &bytes,
        header_length,
        &app.signature.inputs,
        &app.signature.outputs,
    ) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    answer(app, req).await
}

/// The body, at most `max_body` bytes, within the body timeout.
async fn read_body(app: &App, body: Body) -> Result<Bytes, Response> {
    let limited = Limited::new(body, app.max_body);
    match tokio::time::timeout(app.client_timeout, limited.collect()).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body took over {} s", app.client_timeout.as_secs()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::BAD_REQUEST,
            format!("the body is over --max-body ({} bytes)", app.max_body),
        )),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("reading the body: {e}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Queues the request's samples and waits for its outputs.
async fn answer(app: &App, req: InferRequest) -> Response {
    let started = std::time::Instant::now();
    let rx = match app.queue.submit(
        &app.clock,
        req.inputs.clone(),
        req.samples,
        app.signature.outputs.len(),
    ) {
        Ok(rx) => rx,
        Err(refusal) => {
            let why = match refusal {
                Refusal::Full => "the request queue is full",
                Refusal::Closing => "the server is shutting down",
                Refusal::TooLarge => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{} samples are more than the queue holds (--queue {})",
                            req.samples,
                            app.queue.limit()
                        ),
                    );
                }
            };
            app.metrics.request(Outcome::Refused);
            return error(StatusCode::SERVICE_UNAVAILABLE, why);
        }
    };
    match rx.await {
        Ok(Ok(outputs)) => {
            app.metrics.request(Outcome::Served);
            app.metrics.latency(started.elapsed().as_secs_f64());
            let r = kserve::encode_infer(&app.model, &req, &app.signature.outputs, &outputs);
            let mut resp = Response::new(Body::from(r.body));
            if let Some(n) = r.header_length {
                resp.headers_mut()
                    .insert(HEADER_LENGTH, HeaderValue::from(n));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
            } else {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            resp
        }
        // Counted as failed by the loop.
        Ok(Err(why)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("inference failed: {why}"),
        ),
        Err(_) => {
            app.metrics.request(Outcome::Failed);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the service stopped before answering",
            )
        }
    }
}
