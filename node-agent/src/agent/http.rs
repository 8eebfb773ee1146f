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

/// Liveness (the watcher runs) and readiness (it runs and the controller stream is up).
#[derive(Debug, Default)]
pub struct Health {
    watching: AtomicBool,
    connected: AtomicBool,
}

impl Health {
    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::Relaxed);
    }

    pub fn set_connected(&self, on: bool) {
        self.connected.store(on, Ordering::Relaxed);
    }

    pub fn is_watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    fn ready(&self) -> bool {
        self.is_watching() && self.connected.load(Ordering::Relaxed)
    }
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                continue;
            }
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&request, &metrics, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "a metrics connection ended with an error");
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
    let check = |ok: bool, what: &str| {
        if ok {
            text(StatusCode::OK, "ok\n".into(), PLAIN)
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{what}\n"), PLAIN)
        }
    };
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" => check(health.is_watching(), "the marker watcher is not running"),
        "/readyz" => check(
            health.ready(),
            "not streaming to the controller (or the marker watcher is not running)",
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

    fn get(path: &str, health: &Health) -> (StatusCode, String) {
        let request = Request::get(path).body(()).unwrap();
        let response = respond(&request, &Metrics::new(), health);
        let status = response.status();
        let body =
            futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
                .unwrap()
                .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn readiness_needs_the_watcher_and_the_stream() {
        let health = Health::default();
        assert_eq!(get("/healthz", &health).0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_watching(true);
        assert_eq!(get("/healthz", &health).0, StatusCode::OK);
        assert_eq!(get("/readyz", &health).0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_connected(true);
        assert_eq!(get("/readyz", &health).0, StatusCode::OK);
    }

    #[test]
    fn metrics_are_served_and_unknown_paths_are_not() {
        let health = Health::default();
        let (status, body) = get("/metrics", &health);
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("tektite_agent_events_sent_total"));
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(get("/nope", &health).0, StatusCode::NOT_FOUND);
    }
}
