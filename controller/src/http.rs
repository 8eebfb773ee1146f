//! `/metrics`, `/healthz` and `/readyz` over HTTP/1.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
    /// One bit per [`Cache`] whose watch has listed everything once.
    synced: AtomicU8,
}

/// The caches a replica must have filled before it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    Pods = 1,
    TaskRuns = 2,
    CustomRuns = 4,
}

const ALL_CACHES: u8 = Cache::Pods as u8 | Cache::TaskRuns as u8 | Cache::CustomRuns as u8;

impl Health {
    pub fn set_leading(&self, on: bool) {
        self.leading.store(on, Ordering::Relaxed);
    }

    /// `cache`'s watch has listed everything once (its `InitDone`). Read from the watch
    /// rather than by `Store::wait_until_ready`: kube-runtime's store wakes only the last
    /// of several tasks waiting on it at once, and a Controller already waits on its own,
    /// so a second waiter leaves one of the two waiting for ever.
    pub fn cache_synced(&self, cache: Cache) {
        let before = self.synced.fetch_or(cache as u8, Ordering::Relaxed);
        if before != ALL_CACHES && before | cache as u8 == ALL_CACHES {
            tracing::info!("caches synced: ready");
        }
    }

    fn ready(&self) -> bool {
        self.leading.load(Ordering::Relaxed) && self.synced.load(Ordering::Relaxed) == ALL_CACHES
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

/// Serves HTTP/1 over TLS on `listener` until the process ends, as [`serve_http1`]; a
/// connection whose handshake fails is logged and dropped.
pub async fn serve_https1<F, Fut>(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    what: &'static str,
    answer: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_connections(listener, Some(tls), what, answer).await
}

/// Serves HTTP/1 on `listener` until the process ends, answering each request with
/// `answer`; `what` names the server in logs.
pub(crate) async fn serve_http1<F, Fut>(listener: TcpListener, what: &'static str, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_connections(listener, None, what, answer).await
}

async fn serve_connections<F, Fut>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    what: &'static str,
    answer: F,
) where
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
        let (answer, tls) = (answer.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, what, answer).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => serve_connection(stream, what, answer).await,
                    Err(error) => {
                        tracing::debug!(%error, server = what, "a TLS handshake failed")
                    }
                },
            }
        });
    }
}

async fn serve_connection<S, F, Fut>(stream: S, what: &'static str, answer: F)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
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
        health.cache_synced(Cache::Pods);
        health.cache_synced(Cache::TaskRuns);
        health.set_leading(true);
        assert_eq!(get("/readyz", &health), StatusCode::SERVICE_UNAVAILABLE);
        health.cache_synced(Cache::CustomRuns);
        health.cache_synced(Cache::Pods);
        assert_eq!(get("/readyz", &health), StatusCode::OK);
        assert_eq!(get("/metrics", &health), StatusCode::OK);
        assert_eq!(get("/nope", &health), StatusCode::NOT_FOUND);
    }
}
