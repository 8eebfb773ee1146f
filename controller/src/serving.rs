//! The gRPC port's serving certificate when none is given on the command line: minted
//! once with a CA of its own and kept in a Secret, so every replica and every restart
//! serves the same one; the CA alone goes to a second Secret, which the agents mount to
//! trust it. Nobody has to run openssl before `kubectl apply -k deploy/`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// Keys of the serving Secret (those of a `kubernetes.io/tls` Secret, plus the CA).
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";
pub const CA_KEY: &str = "ca.crt";
/// How long a minted certificate lasts: there is no rotation; delete both Secrets and
/// restart the controller (then the agents) for new ones.
const VALID_YEARS: i16 = 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("minting the serving certificate: {0}")]
    Mint(#[from] rcgen::Error),
    #[error("the serving certificate for TLS: {0}")]
    Tls(String),
    #[error("reading Secret {name:?}: {source}")]
    Get {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating Secret {name:?}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Secret {name:?} has no {key:?} (or it is not UTF-8 PEM): give it one, or delete the Secret so a new certificate is minted"
    )]
    Incomplete { name: String, key: &'static str },
    #[error("Secret {name:?} vanished while it was being read; try again")]
    Vanished { name: String },
}

/// A serving certificate and key, and the CA that signed the certificate (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

/// Where the identity is kept.
#[derive(Clone, Debug)]
pub struct Secrets {
    pub namespace: String,
    /// Certificate, key and CA; only the controller reads it.
    pub serving: String,
    /// The CA alone, for the agents.
    pub ca: String,
}

/// The names a Service `service` in `namespace` is reached by.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A new CA, and a certificate for `dns_names` it signed, valid from `now`'s day.
pub fn mint(dns_names: &[String], now: Timestamp) -> Result<Identity, Error> {
    let day = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (year, month, d) = (i32::from(day.year()), day.month() as u8, day.day() as u8);
    let from = date_time_ymd(year, month, d);
    let until = date_time_ymd(year + i32::from(VALID_YEARS), month, d.min(28));

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "tektite-controller CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = from;
    ca.not_after = until;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().cloned().unwrap_or_default(),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = from;
    params.not_after = until;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Identity {
        cert: cert.pem(),
        key: key.serialize_pem(),
        ca: ca_cert.pem(),
    })
}

fn text(secret: &Secret, key: &'static str) -> Result<String, Error> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| s.contains("-----BEGIN"))
        .ok_or_else(|| Error::Incomplete {
            name: secret.metadata.name.clone().unwrap_or_default(),
            key,
        })
}

fn secret(name: &str, namespace: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "tektite".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_owned()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Creates `s`; `Ok(false)` when it already exists.
async fn create(api: &Api<Secret>, s: &Secret) -> Result<bool, Error> {
    match api.create(&PostParams::default(), s).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(source) => Err(Error::Create {
            name: s.metadata.name.clone().unwrap_or_default(),
            source,
        }),
    }
}

/// Writes `ca` (PEM) as the `caBundle` of every webhook of the Validating and Mutating
/// WebhookConfigurations named `name`, so the API server trusts the serving certificate.
/// How many of the two exist (`0`: the webhooks were not installed); unchanged ones are
/// not written.
pub async fn publish_ca(client: &kube::Client, name: &str, ca: &str) -> Result<usize, kube::Error> {
    let mut found = 0;
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let resource = kube::api::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        };
        let written = write_bundle(client, &resource, name, ca, |config| {
            config
                .get_mut("webhooks")
                .and_then(|w| w.as_array_mut())
                .map(|hooks| hooks.iter_mut().map(|h| &mut h["clientConfig"]).collect())
                .unwrap_or_default()
        })
        .await?;
        found += usize::from(written.is_some());
    }
    Ok(found)
}

/// Writes `ca` (PEM) as the `caBundle` of the conversion webhook of each CRD the
/// controller converts ([`crate::conversion::CRDS`]); how many name it now (a CRD
/// without a conversion webhook is left as it is).
pub async fn publish_conversion_ca(client: &kube::Client, ca: &str) -> Result<usize, kube::Error> {
    let resource = kube::api::ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    };
    let mut found = 0;
    for name in crate::conversion::CRDS {
        let written = write_bundle(client, &resource, name, ca, |crd| {
            let conversion = &mut crd["spec"]["conversion"];
            if conversion["strategy"] == "Webhook" {
                vec![&mut conversion["webhook"]["clientConfig"]]
            } else {
                Vec::new()
            }
        })
        .await?;
        found += usize::from(written == Some(true));
    }
    Ok(found)
}

/// Sets `caBundle` in each client config `configs` finds in the cluster-scoped object
/// `name`, and writes the object if that changed it. `None`: no such object; else
/// whether it names the CA (it has a client config to hold it).
async fn write_bundle(
    client: &kube::Client,
    resource: &kube::api::ApiResource,
    name: &str,
    ca: &str,
    configs: impl for<'a> Fn(&'a mut serde_json::Value) -> Vec<&'a mut serde_json::Value>,
) -> Result<Option<bool>, kube::Error> {
    use kube::api::{Api, DynamicObject, PostParams};
    let bundle =
        serde_json::to_value(k8s_openapi::ByteString(ca.as_bytes().to_vec())).unwrap_or_default();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let Some(mut object) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let mut changed = false;
    let slots = configs(&mut object.data);
    let names = !slots.is_empty();
    for config in slots {
        let slot = &mut config["caBundle"];
        if *slot != bundle {
            *slot = bundle.clone();
            changed = true;
        }
    }
    if changed {
        let params = PostParams {
            field_manager: Some(crate::patch::FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        api.replace(name, &params, &object).await?;
    }
    Ok(Some(names))
}

/// A TLS acceptor serving `cert` (PEM, the chain) with `key` (PEM), HTTP/1.1 only.
pub fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("the certificate is not PEM: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| Error::Tls(format!("the key is not PEM: {e}")))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(format!("the certificate and key do not serve: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// The identity kept in `secrets.serving`, minted (for `dns_names`) and stored there
/// first if there is none; then makes sure the agents' CA Secret exists. When replicas
/// race, the first to create the Secret wins and the others read its identity.
pub async fn load_or_mint(
    client: &kube::Client,
    secrets: &Secrets,
    dns_names: &[String],
    now: Timestamp,
) -> Result<Identity, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &secrets.namespace);
    let get = |name: String| {
        let api = api.clone();
        async move {
            api.get_opt(&name)
                .await
                .map_err(|source| Error::Get { name, source })
        }
    };
    let identity = match get(secrets.serving.clone()).await? {
        Some(s) => Identity {
            cert: text(&s, CERT_KEY)?,
            key: text(&s, KEY_KEY)?,
            ca: text(&s, CA_KEY)?,
        },
        None => {
            let minted = mint(dns_names, now)?;
            let s = secret(
                &secrets.serving,
                &secrets.namespace,
                "kubernetes.io/tls",
                &[
                    (CERT_KEY, &minted.cert),
                    (KEY_KEY, &minted.key),
                    (CA_KEY, &minted.ca),
                ],
            );
            if create(&api, &s).await? {
                tracing::info!(secret = %secrets.serving, names = ?dns_names, "minted the gRPC serving certificate");
                minted
            } else {
                // Another replica minted first: serve its certificate.
                let s = get(secrets.serving.clone())
                    .await?
                    .ok_or_else(|| Error::Vanished {
                        name: secrets.serving.clone(),
                    })?;
                Identity {
                    cert: text(&s, CERT_KEY)?,
                    key: text(&s, KEY_KEY)?,
                    ca: text(&s, CA_KEY)?,
                }
            }
        }
    };
    let ca = secret(
        &secrets.ca,
        &secrets.namespace,
        "Opaque",
        &[(CA_KEY, &identity.ca)],
    );
    if create(&api, &ca).await? {
        tracing::info!(secret = %secrets.ca, "published the CA the agents trust");
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_identity_is_pem_and_names_the_service() {
        let names = dns_names("tektite-controller", "tektite-system");
        assert_eq!(names[2], "tektite-controller.tektite-system.svc");
        let id = mint(&names, "2026-11-22T10:00:00Z".parse().unwrap()).unwrap();
        assert!(id.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(id.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(id.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(id.cert, id.ca);
        // Fresh keys every time: two mints never share a key.
        let again = mint(&names, "2026-11-22T10:00:00Z".parse().unwrap()).unwrap();
        assert_ne!(id.key, again.key);
    }
}
