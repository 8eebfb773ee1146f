//! The gRPC serving certificate the controller mints for itself, against the mocked API
//! server that checks every request, and then used for real: an ingest server on
//! loopback serving it, dialled the way an agent dials (CA file, Service name).

mod common;

use std::collections::BTreeMap;

use common::{Expect, at, harness, serve_ingest};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use tektite_controller::serving::{self, Error, Identity, Secrets};
use tektite_proto::agent as pb;
use tektite_proto::agent::agent_client::AgentClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, ServerTlsConfig};

const SECRETS: &str = "/api/v1/namespaces/tektite-system/secrets";
const NOW: &str = "2026-11-22T10:00:00Z";

fn secrets() -> Secrets {
    Secrets {
        namespace: "tektite-system".into(),
        serving: "tektite-controller-tls".into(),
        ca: "tektite-controller-ca".into(),
    }
}

fn names() -> Vec<String> {
    serving::dns_names("tektite-controller", "tektite-system")
}

/// The Secret as the API server returns it.
fn stored(name: &str, data: &[(&str, &str)]) -> Value {
    serde_json::to_value(Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("tektite-system".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    })
    .unwrap()
}

fn keys(secret: &Value) -> Vec<String> {
    secret["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_first_start_mints_keeps_it_and_publishes_only_the_ca() {
    let h = harness(
        vec![
            Expect::get(&format!("{SECRETS}/tektite-controller-tls")).fail(404, "NotFound"),
            Expect::post(SECRETS).body(|s| {
                assert_eq!(s["metadata"]["name"], "tektite-controller-tls");
                assert_eq!(s["type"], "kubernetes.io/tls");
                assert_eq!(keys(s), ["ca.crt", "tls.crt", "tls.key"]);
            }),
            Expect::post(SECRETS).body(|s| {
                assert_eq!(s["metadata"]["name"], "tektite-controller-ca");
                // The agents mount this one: never the key.
                assert_eq!(keys(s), ["ca.crt"]);
            }),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    let id = serving::load_or_mint(&h.ctx.client, &secrets(), &names(), at(NOW))
        .await
        .unwrap();
    assert!(id.key.contains("PRIVATE KEY"));
    h.finish().await;
}

#[tokio::test]
async fn a_restart_serves_the_kept_certificate_and_a_losing_replica_the_winners() {
    let kept = serving::mint(&names(), at(NOW)).unwrap();
    let data = [
        ("tls.crt", kept.cert.as_str()),
        ("tls.key", kept.key.as_str()),
        ("ca.crt", kept.ca.as_str()),
    ];
    let h = harness(
        vec![
            Expect::get(&format!("{SECRETS}/tektite-controller-tls"))
                .reply(200, stored("tektite-controller-tls", &data)),
            Expect::post(SECRETS).fail(409, "AlreadyExists"),
            // Another replica: it found nothing, minted, lost the create, reads the winner's.
            Expect::get(&format!("{SECRETS}/tektite-controller-tls")).fail(404, "NotFound"),
            Expect::post(SECRETS).fail(409, "AlreadyExists"),
            Expect::get(&format!("{SECRETS}/tektite-controller-tls"))
                .reply(200, stored("tektite-controller-tls", &data)),
            Expect::post(SECRETS).fail(409, "AlreadyExists"),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    for _ in 0..2 {
        let id = serving::load_or_mint(&h.ctx.client, &secrets(), &names(), at(NOW))
            .await
            .unwrap();
        assert_eq!(id, kept);
    }
    h.finish().await;
}

#[tokio::test]
async fn a_kept_secret_without_its_key_is_named_with_what_to_do() {
    let kept = serving::mint(&names(), at(NOW)).unwrap();
    let h = harness(
        vec![
            Expect::get(&format!("{SECRETS}/tektite-controller-tls")).reply(
                200,
                stored(
                    "tektite-controller-tls",
                    &[("tls.crt", &kept.cert), ("ca.crt", &kept.ca)],
                ),
            ),
        ],
        vec![],
        vec![],
        at(NOW),
    );
    let err = serving::load_or_mint(&h.ctx.client, &secrets(), &names(), at(NOW))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Incomplete { key: "tls.key", .. }));
    let message = err.to_string();
    assert!(
        message.contains("tektite-controller-tls") && message.contains("delete the Secret"),
        "{message}"
    );
    h.finish().await;
}

/// Serves the ingest with `id` on loopback; calls it as an agent trusting `ca` and dialling
/// `domain` would, with no token: an answer (Unauthenticated) means TLS was accepted.
async fn call(id: &Identity, ca: &str, domain: &str) -> Result<tonic::Code, String> {
    let h = harness(vec![], vec![], vec![], at(NOW));
    let tls = ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
        id.cert.as_bytes(),
        id.key.as_bytes(),
    ));
    let server = serve_ingest(&h, Some(tls)).await;
    let port = server.port;
    // The agents dial the Service's name; here it leads to loopback.
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name(domain),
        )
        .unwrap();
    let outcome = match endpoint.connect().await {
        Err(e) => Err(format!("{e:?}")),
        Ok(channel) => {
            let hello = pb::AgentMessage {
                body: Some(pb::agent_message::Body::Hello(pb::Hello {
                    node_name: "node-a".into(),
                    agent_version: "test".into(),
                    boot_id: "boot".into(),
                    agent_run_id: "run-1".into(),
                })),
            };
            match AgentClient::new(channel)
                .report(tokio_stream::iter([hello]))
                .await
            {
                Ok(_) => Ok(tonic::Code::Ok),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    Err(format!("{status:?}"))
                }
                Err(status) => Ok(status.code()),
            }
        }
    };
    server.stop().await;
    h.finish().await;
    outcome
}

#[tokio::test]
async fn an_agent_trusting_the_published_ca_reaches_the_minted_server_and_no_other() {
    let id = serving::mint(&names(), at(NOW)).unwrap();
    let service = "tektite-controller.tektite-system.svc";
    assert_eq!(
        call(&id, &id.ca, service).await,
        Ok(tonic::Code::Unauthenticated)
    );

    let stranger = serving::mint(&names(), at(NOW)).unwrap();
    let refused = call(&id, &stranger.ca, service).await;
    assert!(
        refused.is_err(),
        "a foreign CA must not be trusted: {refused:?}"
    );
    let wrong_name = call(&id, &id.ca, "tektite-controller.elsewhere.svc").await;
    assert!(
        wrong_name.is_err(),
        "the certificate names only its Service: {wrong_name:?}"
    );
}
