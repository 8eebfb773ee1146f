//! Image entrypoints: a step with neither command nor script runs its image's own
//! ENTRYPOINT and CMD, which only the image's registry knows. The controller looks the
//! image's config up as Tekton's entrypoint lookup does: the tag resolved to its digest
//! (one HEAD request), the config read once per digest and kept; an image index read for
//! each of its linux platforms, and when they run different commands, the Pod is placed on
//! the platform chosen (`--image-platform`) by node labels. Credentials are the Pod's
//! imagePullSecrets and the ServiceAccount's (docker config Secrets), as the kubelet pulls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tektite_engine::pod::ImageConfig;

/// Why an image's config could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{image:?} is not an image reference: {why}")]
    Reference { image: String, why: String },
    #[error("the registry of {image:?} answered: {why}")]
    Registry { image: String, why: String },
    #[error("the config of {image:?} is not an image config: {why}")]
    Config { image: String, why: String },
    #[error("the image index {image:?} has no linux image")]
    NoLinux { image: String },
    #[error("the bundle {image:?}: {why}")]
    Bundle { image: String, why: String },
}

/// The looked-up configs, by digest, and the client that looks them up.
pub struct Images {
    client: Client,
    /// The platform chosen where an index's platforms differ (`os/arch`).
    platform: (String, String),
    by_digest: Mutex<HashMap<String, ImageConfig>>,
    /// Bundle objects read, by the bundle's digest, kind and name.
    bundled: Mutex<HashMap<(String, String, String), String>>,
}

impl Default for Images {
    /// Every registry over HTTPS; linux/amd64 where an index's platforms differ.
    fn default() -> Images {
        Images::new(Vec::new(), DEFAULT_PLATFORM)
    }
}

/// A bundle holds at most this many objects (Tekton's contract).
const MAX_BUNDLE_LAYERS: usize = 20;
/// The largest object read from a bundle.
const MAX_OBJECT: usize = 4 * 1024 * 1024;

/// The one file of a bundle layer (a tar, gzipped or not), as text.
fn layer_text(bytes: &[u8]) -> Result<String, String> {
    use std::io::Read as _;
    let plain: Box<dyn std::io::Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(plain.take(MAX_OBJECT as u64 * 2));
    let entries = archive.entries().map_err(|e| format!("not a tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a tar: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(MAX_OBJECT as u64)
            .read_to_string(&mut text)
            .map_err(|e| format!("its file is not UTF-8 text: {e}"))?;
        return Ok(text);
    }
    Err("it holds no file".into())
}

/// The platform chosen where an image index's platforms run different commands.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Docker config JSON (`.dockerconfigjson`, or the older `.dockercfg` map).
#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(serde::Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials for `registry` among docker config Secrets' data (`.dockerconfigjson`
/// or `.dockercfg`), the first that has them; anonymous else.
pub fn auth_for(registry: &str, secrets: &[BTreeMap<String, Vec<u8>>]) -> RegistryAuth {
    let host = |key: &str| {
        key.trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let wanted = match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "index.docker.io",
        r => r,
    };
    for data in secrets {
        let auths = if let Some(json) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<DockerConfig>(json)
                .map(|c| c.auths)
                .ok()
        } else if let Some(json) = data.get(".dockercfg") {
            serde_json::from_slice::<BTreeMap<String, DockerAuth>>(json).ok()
        } else {
            None
        };
        for (key, a) in auths.into_iter().flatten() {
            let h = host(&key);
            let h = if h == "docker.io" || h == "registry-1.docker.io" {
                "index.docker.io".to_owned()
            } else {
                h
            };
            if h != wanted {
                continue;
            }
            if let (Some(u), Some(p)) = (&a.username, &a.password) {
                return RegistryAuth::Basic(u.clone(), p.clone());
            }
            let decoded = a
                .auth
                .and_then(|x| serde_json::from_value::<k8s_openapi::ByteString>(x.into()).ok())
                .map(|b| b.0)
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return RegistryAuth::Basic(u.to_owned(), p.to_owned());
            }
        }
    }
    RegistryAuth::Anonymous
}

fn parse_config(image: &str, config: &str) -> Result<ImageConfig, Error> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        config: Option<Inner>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default, rename = "Entrypoint")]
        entrypoint: Option<Vec<String>>,
        #[serde(default, rename = "Cmd")]
        cmd: Option<Vec<String>>,
    }
    let file: File = serde_json::from_str(config).map_err(|e| Error::Config {
        image: image.to_owned(),
        why: e.to_string(),
    })?;
    let inner = file.config.unwrap_or(Inner {
        entrypoint: None,
        cmd: None,
    });
    Ok(ImageConfig {
        entrypoint: inner.entrypoint.unwrap_or_default(),
        cmd: inner.cmd.unwrap_or_default(),
        node_selector: BTreeMap::new(),
    })
}

fn reference(image: &str) -> Result<Reference, Error> {
    image
        .parse()
        .map_err(|e: oci_client::ParseError| Error::Reference {
            image: image.to_owned(),
            why: e.to_string(),
        })
}

fn registry_error(image: &str, e: oci_client::errors::OciDistributionError) -> Error {
    Error::Registry {
        image: image.to_owned(),
        why: e.to_string(),
    }
}

/// `reference`'s repository at `digest`.
fn at_digest(reference: &Reference, digest: &str) -> Reference {
    Reference::with_digest(
        reference.registry().to_owned(),
        reference.repository().to_owned(),
        digest.to_owned(),
    )
}

impl Images {
    /// `insecure`: registries (`host:port`) reached over plain HTTP; `platform`: `os/arch`.
    pub fn new(insecure: Vec<String>, platform: &str) -> Images {
        let (os, arch) = platform.split_once('/').unwrap_or(("linux", "amd64"));
        // reqwest (under oci-client) uses the process's rustls provider: ring, as the rest.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            // An index is read platform by platform here, never picked by the client.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        Images {
            client: Client::new(config),
            platform: (os.to_owned(), arch.to_owned()),
            by_digest: Mutex::default(),
            bundled: Mutex::default(),
        }
    }

    /// What `image` runs when a container gives no command.
    pub async fn config(&self, image: &str, auth: &RegistryAuth) -> Result<ImageConfig, Error> {
        let reference = reference(image)?;
        let registry = |e| registry_error(image, e);
        let digest = match reference.digest() {
            Some(d) => d.to_owned(),
            None => self
                .client
                .fetch_manifest_digest(&reference, auth)
                .await
                .map_err(registry)?,
        };
        if let Some(c) = self.cached(&digest) {
            return Ok(c);
        }
        let pinned = at_digest(&reference, &digest);
        let (manifest, _) = self
            .client
            .pull_manifest(&pinned, auth)
            .await
            .map_err(registry)?;
        let config = match manifest {
            OciManifest::Image(_) => {
                let (_, _, config) = self
                    .client
                    .pull_manifest_and_config(&pinned, auth)
                    .await
                    .map_err(registry)?;
                parse_config(image, &config)?
            }
            OciManifest::ImageIndex(index) => {
                let mut by_platform = Vec::new();
                for m in &index.manifests {
                    let Some(p) = &m.platform else { continue };
                    if p.os.to_string() != "linux" {
                        continue;
                    }
                    let one = at_digest(&reference, &m.digest);
                    let (_, _, config) = self
                        .client
                        .pull_manifest_and_config(&one, auth)
                        .await
                        .map_err(registry)?;
                    by_platform.push((p.architecture.to_string(), parse_config(image, &config)?));
                }
                let Some(first) = by_platform.first() else {
                    return Err(Error::NoLinux {
                        image: image.to_owned(),
                    });
                };
                if by_platform.iter().all(|(_, c)| c == &first.1) {
                    first.1.clone()
                } else {
                    let (os, arch) = &self.platform;
                    let chosen = by_platform.iter().find(|(a, _)| a == arch).unwrap_or(first);
                    let mut c = chosen.1.clone();
                    c.node_selector = BTreeMap::from([
                        ("kubernetes.io/os".to_owned(), os.clone()),
                        ("kubernetes.io/arch".to_owned(), chosen.0.clone()),
                    ]);
                    c
                }
            }
        };
        self.by_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, config.clone());
        Ok(config)
    }

    /// The object `kind` `name` of the Tekton bundle `image` (Tekton's bundle contract:
    /// one layer per object, annotated with its kind and name; at most 20), as its text,
    /// with the bundle's digest.
    pub async fn bundle_object(
        &self,
        image: &str,
        auth: &RegistryAuth,
        kind: &str,
        name: &str,
    ) -> Result<(String, String), Error> {
        let reference = reference(image)?;
        let registry = |e| registry_error(image, e);
        let bundle = |why: String| Error::Bundle {
            image: image.to_owned(),
            why,
        };
        let kept = |digest: &str| {
            self.bundled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(digest.to_owned(), kind.to_owned(), name.to_owned()))
                .cloned()
        };
        // A bundle named by digest never changes: what was read of it is read again.
        if let Some(d) = reference.digest()
            && let Some(text) = kept(d)
        {
            return Ok((text, d.to_owned()));
        }
        let (manifest, digest) = self
            .client
            .pull_manifest(&reference, auth)
            .await
            .map_err(registry)?;
        if let Some(text) = kept(&digest) {
            return Ok((text, digest));
        }
        let OciManifest::Image(manifest) = manifest else {
            return Err(bundle("it is an image index; a bundle is one image".into()));
        };
        if manifest.layers.len() > MAX_BUNDLE_LAYERS {
            return Err(bundle(format!(
                "it has {} layers; a bundle holds at most {MAX_BUNDLE_LAYERS}",
                manifest.layers.len()
            )));
        }
        let annotation = |l: &oci_client::manifest::OciDescriptor, key: &str| {
            l.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .cloned()
                .unwrap_or_default()
        };
        let Some(layer) = manifest.layers.iter().find(|l| {
            annotation(l, "dev.tekton.image.kind") == kind
                && annotation(l, "dev.tekton.image.name") == name
        }) else {
            let held: Vec<String> = manifest
                .layers
                .iter()
                .map(|l| {
                    format!(
                        "{} {:?}",
                        annotation(l, "dev.tekton.image.kind"),
                        annotation(l, "dev.tekton.image.name")
                    )
                })
                .collect();
            return Err(bundle(format!(
                "it holds no {kind} {name:?} (it holds: {})",
                held.join(", ")
            )));
        };
        if layer.size > MAX_OBJECT as i64 {
            return Err(bundle(format!(
                "the layer of {kind} {name:?} is {} bytes; at most {MAX_OBJECT} are read",
                layer.size
            )));
        }
        let mut bytes = Vec::new();
        let pinned = at_digest(&reference, &digest);
        self.client
            .pull_blob(&pinned, layer, &mut bytes)
            .await
            .map_err(registry)?;
        let text = layer_text(&bytes)
            .map_err(|why| bundle(format!("the layer of {kind} {name:?}: {why}")))?;
        self.bundled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (digest.clone(), kind.to_owned(), name.to_owned()),
                text.clone(),
            );
        Ok((text, digest))
    }

    fn cached(&self, digest: &str) -> Option<ImageConfig> {
        self.by_digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    /// The registry `image` is pulled from (`docker.io` for a bare name).
    pub fn registry_of(image: &str) -> Option<String> {
        image
            .parse::<Reference>()
            .ok()
            .map(|r| r.registry().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_docker_config_that_names_the_registry() {
        let config = |json: &str| {
            BTreeMap::from([(".dockerconfigjson".to_owned(), json.as_bytes().to_vec())])
        };
        let secrets = [
            config(r#"{"auths": {"other.example:5000": {"auth": "eDp5"}}}"#),
            // base64("user:pass")
            config(r#"{"auths": {"https://127.0.0.1:5000/v2/": {"auth": "dXNlcjpwYXNz"}}}"#),
            config(
                r#"{"auths": {"https://index.docker.io/v1/": {"username": "d", "password": "h"}}}"#,
            ),
        ];
        assert_eq!(
            auth_for("127.0.0.1:5000", &secrets),
            RegistryAuth::Basic("user".into(), "pass".into())
        );
        assert_eq!(
            auth_for("docker.io", &secrets),
            RegistryAuth::Basic("d".into(), "h".into())
        );
        assert_eq!(auth_for("quay.io", &secrets), RegistryAuth::Anonymous);
    }

    #[test]
    fn an_image_config_gives_its_entrypoint_and_cmd() {
        let c = parse_config(
            "x",
            r#"{"architecture": "amd64", "config": {"Entrypoint": ["/ko-app/git-init"], "Cmd": ["-h"], "Env": ["A=b"]}}"#,
        )
        .unwrap();
        assert_eq!(c.entrypoint, ["/ko-app/git-init"]);
        assert_eq!(c.cmd, ["-h"]);
        assert!(parse_config("x", "not json").is_err());
        assert_eq!(parse_config("x", "{}").unwrap(), ImageConfig::default());
    }
}
