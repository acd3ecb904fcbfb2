//! `--metrics-listen ADDR:PORT`: `GET /metrics` over HTTP/1 (hyper), for Prometheus to scrape; 404 for any other path.
//!
//! Each connection is served on its own task with a deadline for its
//! request head and one for the whole connection, a small header buffer and
//! a bound on connections at once, where one still sending its head makes
//! room for a new one (see [`super::accept`]: a slowloris cannot keep
//! Prometheus out); nothing here runs on the reactor's task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::Http;
use hyper::service::service_fn;
use hyper::{Body, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::accept::{self, Bounds};
use super::state::Shared;

/// One connection's whole life (headers, reply) may take this long.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(10);
/// Its request head (request line and headers) this long: a scraper sends
/// it at once.
pub const HEAD_LIMIT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Request head buffer (hyper's smallest).
const MAX_HEAD: usize = 8192;
/// What a client is told when every connection is being answered.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";

/// The content type of OpenMetrics text, which `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bind `addr` now (so a taken port stops the start-up with a clear error).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))
}

/// Serve until `cancel` fires.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let bounds = Bounds {
        what: "metrics listener",
        max: MAX_CONNECTIONS,
        head_limit: HEAD_LIMIT,
        limit: CONNECTION_LIMIT,
        busy: Some(BUSY),
    };
    accept::serve(&listener, bounds, cancel, move |stream, request| {
        let shared = shared.clone();
        let service = service_fn(move |req| {
            // hyper calls the service once the head is in.
            request.arrived();
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(answer(&req, &shared)) }
        });
        async move {
            let _ = Http::new()
                .http1_only(true)
                .http1_keep_alive(false)
                .max_buf_size(MAX_HEAD)
                .serve_connection(stream, service)
                .await;
        }
    })
    .await;
}

fn answer(req: &Request<Body>, shared: &Shared) -> Response<Body> {
    let status = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            return Response::builder()
                .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(Body::from(shared.metrics_text()))
                .unwrap_or_default();
        }
        (_, "/metrics") => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::NOT_FOUND,
    };
    let mut r = Response::new(Body::from(format!(
        "{}: only GET /metrics is served\n",
        status
    )));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests;
