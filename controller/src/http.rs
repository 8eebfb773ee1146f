//! `/metrics`, `/healthz` and `/readyz` over HTTP/1.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Ready once this replica leads and its caches have synced: only then does the Service
/// send agents its way.
#[derive(Debug, Default)]
pub struct Health {
    leading: AtomicBool,
    synced: AtomicBool,
}

impl Health {
    pub fn set_leading(&self, on: bool) {
        self.leading.store(on, Ordering::Relaxed);
    }

    pub fn set_synced(&self, on: bool) {
        self.synced.store(on, Ordering::Relaxed);
    }

    fn ready(&self) -> bool {
        self.leading.load(Ordering::Relaxed) && self.synced.load(Ordering::Relaxed)
    }
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    serve_http1(listener, "metrics", move |request| {
        let response = respond(&request, &metrics, &health);
        async move { response }
    })
    .await
}

/// Serves HTTP/1 on `listener` until the process ends, answering each request with
/// `answer`; `what` names the server in logs.
pub(crate) async fn serve_http1<F, Fut>(listener: TcpListener, what: &'static str, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, server = what, "accepting a connection failed");
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = answer(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, server = what, "a connection ended with an error");
            }
        });
    }
}

fn respond<B>(request: &Request<B>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a static response is valid")
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into(), PLAIN);
    }
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" if health.ready() => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not leading, or the caches have not synced yet\n".into(),
            PLAIN,
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
            PLAIN,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, health: &Health) -> StatusCode {
        respond(
            &Request::get(path).body(()).unwrap(),
            &Metrics::new(),
            health,
        )
        .status()
    }

    #[test]
    fn ready_only_when_leading_with_synced_caches() {
        let health = Health::default();
        assert_eq!(get("/healthz", &health), StatusCode::OK);
        assert_eq!(get("/readyz", &health), StatusCode::SERVICE_UNAVAILABLE);
        health.set_synced(true);
        assert_eq!(get("/readyz", &health), StatusCode::SERVICE_UNAVAILABLE);
        health.set_leading(true);
        assert_eq!(get("/readyz", &health), StatusCode::OK);
        assert_eq!(get("/metrics", &health), StatusCode::OK);
        assert_eq!(get("/nope", &health), StatusCode::NOT_FOUND);
    }
}
