//! Remote resolution, in process: a `taskRef` or `pipelineRef` with a `resolver` is
//! fetched here and what was fetched is recorded as Tekton records it
//! (`status.provenance.refSource`: uri, digest, entryPoint).
//!
//! Built in: `cluster` (Tekton's docs/cluster-resolver.md): a Task, Pipeline or StepAction
//! of another namespace, by the params `kind`, `name` and `namespace`, within the
//! `allowed-namespaces` and outside the `blocked-namespaces` of its configuration; and
//! `http` (docs/http-resolver.md): the document at `url`, with basic auth from a Secret
//! of the run's namespace and an optional `digest` to check, within its `fetch-timeout`
//! (at most [`FETCH_TIMEOUT`]).
//! Another resolver's reference fails the run with the reason and what is supported.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;

use kube::Api;
use kube::api::ApiResource;
use kube::core::DynamicObject;
use tektite_api::v1::{Param, ParamValue, RefSource};

/// What a reference asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Task,
    Pipeline,
    StepAction,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Pipeline => "pipeline",
            Kind::StepAction => "stepaction",
        }
    }

    fn resource(self) -> ApiResource {
        let (kind, version, plural) = match self {
            Kind::Task => ("Task", "v1", "tasks"),
            Kind::Pipeline => ("Pipeline", "v1", "pipelines"),
            Kind::StepAction => ("StepAction", "v1beta1", "stepactions"),
        };
        ApiResource {
            group: "tekton.dev".into(),
            version: version.into(),
            api_version: format!("tekton.dev/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// The cluster resolver's settings (Tekton's `cluster-resolver-config` keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    pub default_namespace: Option<String>,
    /// Empty: every namespace not blocked.
    pub allowed: Vec<String>,
    /// `*` blocks every namespace not allowed.
    pub blocked: Vec<String>,
}

impl ClusterConfig {
    pub fn from_config(data: &BTreeMap<String, String>) -> ClusterConfig {
        let list = |key: &str| {
            data.get(key)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        ClusterConfig {
            default_namespace: data
                .get("default-namespace")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            allowed: list("allowed-namespaces"),
            blocked: list("blocked-namespaces"),
        }
    }

    /// Whether a reference may read namespace `ns`.
    fn permits(&self, ns: &str) -> Result<(), String> {
        let allowed = self.allowed.iter().any(|a| a == ns);
        let blocked = self.blocked.iter().any(|b| b == ns || b == "*");
        if !self.allowed.is_empty() && !allowed {
            return Err(format!(
                "the cluster resolver may read only namespaces {} (allowed-namespaces), not {ns:?}",
                self.allowed.join(", ")
            ));
        }
        if blocked && !allowed {
            return Err(format!(
                "the cluster resolver may not read namespace {ns:?} (blocked-namespaces)"
            ));
        }
        Ok(())
    }
}

/// The string param `name` of a reference to `resolver`, if given.
fn string_param(params: &[Param], resolver: &str, name: &str) -> Option<Result<String, String>> {
    params
        .iter()
        .find(|p| p.name == name)
        .map(|p| match &p.value {
            ParamValue::String(s) => Ok(s.clone()),
            _ => Err(format!(
                "the {resolver} resolver's param {name:?} must be a string"
            )),
        })
}

/// Where a `cluster` reference points: kind, namespace, name; or why it cannot be had.
fn cluster_target(
    params: &[Param],
    wanted: Kind,
    run_namespace: &str,
    config: &ClusterConfig,
) -> Result<(String, String), String> {
    let get = |name: &str| string_param(params, "cluster", name);
    if let Some(p) = params
        .iter()
        .find(|p| !["kind", "name", "namespace", "cache"].contains(&p.name.as_str()))
    {
        return Err(format!(
            "the cluster resolver takes the params kind, name, namespace and cache, not {:?}",
            p.name
        ));
    }
    let kind = get("kind")
        .transpose()?
        .unwrap_or_else(|| wanted.name().into());
    if kind != wanted.name() {
        return Err(format!(
            "the reference asks the cluster resolver for a {kind}; it needs a {}",
            wanted.name()
        ));
    }
    let name = get("name")
        .transpose()?
        .filter(|n| !n.is_empty())
        .ok_or("the cluster resolver needs the param \"name\"")?;
    let ns = get("namespace")
        .transpose()?
        .filter(|n| !n.is_empty())
        .or_else(|| config.default_namespace.clone())
        .unwrap_or_else(|| run_namespace.to_owned());
    config.permits(&ns)?;
    Ok((ns, name))
}

/// What a resolver fetched: the document's `spec` (as tekton.dev/v1), its name, and where
/// it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub spec: serde_json::Value,
    pub name: String,
    pub source: RefSource,
}

/// How long an http fetch may take at most (Tekton's global limit on a resolution).
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The http resolver's settings (Tekton's `http-resolver-config` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    pub fetch_timeout: std::time::Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            fetch_timeout: FETCH_TIMEOUT,
        }
    }
}

impl HttpConfig {
    /// `fetch-timeout` (a duration like 10s), at most [`FETCH_TIMEOUT`].
    pub fn from_config(data: &BTreeMap<String, String>) -> Result<HttpConfig, Vec<String>> {
        let Some(v) = data.get("fetch-timeout") else {
            return Ok(HttpConfig::default());
        };
        match tektite_api::v1::parse_go_duration(v.trim()) {
            Ok(t) if !t.is_zero() => Ok(HttpConfig {
                fetch_timeout: t.min(FETCH_TIMEOUT),
            }),
            Ok(_) => Err(vec![
                "fetch-timeout: a fetch needs some time: give more than 0s".into(),
            ]),
            Err(e) => Err(vec![format!("fetch-timeout: {e}")]),
        }
    }
}

/// Where the resolvers that reach outside the cluster fetch from: registries (bundles)
/// and git repositories, each keeping what it read by content.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub images: std::sync::Arc<crate::images::Images>,
    pub git: std::sync::Arc<crate::git::Git>,
}

/// The hub resolver's settings (Tekton's `hubresolver-config` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    pub default_type: String,
    pub tekton_catalog: String,
    pub artifact_task_catalog: String,
    pub artifact_pipeline_catalog: String,
    /// Tried in order; the first that answers wins.
    pub artifact_hub_urls: Vec<String>,
    pub tekton_hub_urls: Vec<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            default_type: "artifact".into(),
            tekton_catalog: "Tekton".into(),
            artifact_task_catalog: "tekton-catalog-tasks".into(),
            artifact_pipeline_catalog: "tekton-catalog-pipelines".into(),
            artifact_hub_urls: vec![ARTIFACT_HUB.into()],
            tekton_hub_urls: Vec::new(),
        }
    }
}

impl HubConfig {
    /// `default-type`, `default-tekton-hub-catalog`, `default-artifact-hub-task-catalog`,
    /// `default-artifact-hub-pipeline-catalog`, and `artifact-hub-urls` / `tekton-hub-urls`
    /// (YAML lists).
    pub fn from_config(data: &BTreeMap<String, String>) -> Result<HubConfig, Vec<String>> {
        let mut c = HubConfig::default();
        let mut problems = Vec::new();
        let text = |k: &str| {
            data.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(t) = text("default-type") {
            if t == "artifact" || t == "tekton" {
                c.default_type = t;
            } else {
                problems.push(format!("default-type: artifact or tekton, not {t:?}"));
            }
        }
        for (key, slot) in [
            ("default-tekton-hub-catalog", &mut c.tekton_catalog),
            (
                "default-artifact-hub-task-catalog",
                &mut c.artifact_task_catalog,
            ),
            (
                "default-artifact-hub-pipeline-catalog",
                &mut c.artifact_pipeline_catalog,
            ),
        ] {
            if let Some(v) = text(key) {
                *slot = v;
            }
        }
        for (key, slot) in [
            ("artifact-hub-urls", &mut c.artifact_hub_urls),
            ("tekton-hub-urls", &mut c.tekton_hub_urls),
        ] {
            let Some(v) = text(key) else { continue };
            match serde_saphyr::from_str::<Vec<String>>(&v) {
                Ok(urls)
                    if urls
                        .iter()
                        .all(|u| u.starts_with("http://") || u.starts_with("https://")) =>
                {
                    *slot = urls
                }
                Ok(_) => problems.push(format!("{key}: every URL must be http or https")),
                Err(e) => problems.push(format!("{key}: a YAML list of URLs: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }
}

/// Every built-in resolver's settings, as their ConfigMaps say now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub cluster: ClusterConfig,
    pub http: HttpConfig,
    pub git: GitConfig,
    pub hub: HubConfig,
}

/// The git resolver's settings (Tekton's `git-resolver-config` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitConfig {
    pub fetch_timeout: std::time::Duration,
    /// The revision when a reference gives none.
    pub default_revision: String,
    /// The URL when a reference gives none.
    pub default_url: Option<String>,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            fetch_timeout: FETCH_TIMEOUT,
            default_revision: "main".into(),
            default_url: None,
        }
    }
}

impl GitConfig {
    /// `fetch-timeout`, `default-revision`, `default-url`.
    pub fn from_config(data: &BTreeMap<String, String>) -> Result<GitConfig, Vec<String>> {
        let mut c = GitConfig::default();
        let mut problems = Vec::new();
        if let Some(v) = data.get("fetch-timeout") {
            match tektite_api::v1::parse_go_duration(v.trim()) {
                Ok(t) if !t.is_zero() => c.fetch_timeout = t.min(FETCH_TIMEOUT),
                Ok(_) => problems
                    .push("fetch-timeout: a fetch needs some time: give more than 0s".into()),
                Err(e) => problems.push(format!("fetch-timeout: {e}")),
            }
        }
        if let Some(v) = data
            .get("default-revision")
            .filter(|v| !v.trim().is_empty())
        {
            c.default_revision = v.trim().to_owned();
        }
        c.default_url = data
            .get("default-url")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    }
}
/// The largest document an http fetch takes.
const MAX_DOCUMENT: usize = 4 * 1024 * 1024;

/// Why a reference is not resolved (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// It cannot be had: the run fails, saying this.
    Failed(String),
    /// A resolver tektite does not have built in has not answered its ResolutionRequest
    /// yet: the run waits, saying this.
    Waiting(String),
}

impl Unresolved {
    /// The run's condition for the reference at `field`: False with `failed` (the run's
    /// kind's reason), or Unknown with `waiting` (Tekton's Resolving...Ref) while its
    /// resolver has not answered.
    pub fn condition(self, field: &str, failed: &str, waiting: &str) -> tektite_api::v1::Condition {
        use tektite_api::v1::Condition;
        match self {
            Unresolved::Failed(why) => {
                Condition::succeeded("False", failed, format!("{why} ({field})"))
            }
            Unresolved::Waiting(why) => {
                Condition::succeeded("Unknown", waiting, format!("{why} ({field})"))
            }
        }
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::Failed(why) | Unresolved::Waiting(why) => f.write_str(why),
        }
    }
}

/// Resolves a reference of `resolver` with `params` for a run in `run_namespace` (owned
/// by `owner`, which a ResolutionRequest for a third-party resolver is owned by too):
/// `Ok(Err(_))` when it cannot be had, or not yet, for the run's condition.
#[allow(clippy::too_many_arguments)]
pub async fn resolve(
    client: &kube::Client,
    settings: &Settings,
    sources: &Sources,
    run_namespace: &str,
    owner: Option<&OwnerReference>,
    resolver: &str,
    params: &[Param],
    wanted: Kind,
) -> Result<Result<Resolved, Unresolved>, kube::Error> {
    let failed = |r: Result<Resolved, String>| r.map_err(Unresolved::Failed);
    match resolver {
        "bundles" => Ok(failed(
            fetch_bundle(client, &sources.images, run_namespace, params, wanted).await,
        )),
        "git" => Ok(failed(
            fetch_git(&sources.git, &settings.git, params, wanted).await,
        )),
        "hub" => Ok(failed(
            fetch_hub(&settings.http, &settings.hub, params, wanted).await,
        )),
        "cluster" => {
            let (ns, name) = match cluster_target(params, wanted, run_namespace, &settings.cluster)
            {
                Ok(t) => t,
                Err(why) => return Ok(Err(Unresolved::Failed(why))),
            };
            Ok(match fetch_cluster(client, wanted, &ns, &name).await? {
                Some(f) => Ok(Resolved {
                    spec: f.spec,
                    name,
                    source: f.source,
                }),
                None => Err(Unresolved::Failed(format!(
                    "the cluster resolver found no {} {name:?} in namespace {ns:?}",
                    wanted.resource().kind
                ))),
            })
        }
        "http" => Ok(failed(
            fetch_http(client, &settings.http, run_namespace, params, wanted).await,
        )),
        other => request(client, run_namespace, owner, other, params, wanted).await,
    }
}

/// The ResolutionRequest API (resolution.tekton.dev/v1beta1), which third-party
/// resolvers answer.
fn resolution_requests() -> ApiResource {
    ApiResource {
        group: "resolution.tekton.dev".into(),
        version: "v1beta1".into(),
        api_version: "resolution.tekton.dev/v1beta1".into(),
        kind: "ResolutionRequest".into(),
        plural: "resolutionrequests".into(),
    }
}

/// How soon a run waiting for a resolver's answer is looked at again.
pub const WAITING_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The label Tekton's resolvers select the requests they answer by.
pub const RESOLVER_TYPE_LABEL: &str = "resolution.tekton.dev/type";

/// A resolver tektite does not have built in, as Tekton asks one: a ResolutionRequest in
/// the run's namespace, named after the run and the params (so a reconcile finds its own
/// again), labelled with the resolver's name and owned by the run; its answer (the
/// document in `status.data`, base64) read once it has succeeded, its message when it
/// failed; no answer within Tekton's minute is a failure.
async fn request(
    client: &kube::Client,
    run_namespace: &str,
    owner: Option<&OwnerReference>,
    resolver: &str,
    params: &[Param],
    wanted: Kind,
) -> Result<Result<Resolved, Unresolved>, kube::Error> {
    use kube::api::{DynamicObject, PostParams};
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), run_namespace, &resolution_requests());
    let owner_name = owner.map(|o| o.name.as_str()).unwrap_or_default();
    let key = format!(
        "{run_namespace}/{owner_name}/{}",
        serde_json::to_string(params).unwrap_or_default()
    );
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref());
    let prefix: String = resolver
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(30)
        .collect();
    let name = format!("{prefix}-{}", &digest[..32]);
    let waiting = || {
        Ok(Err(Unresolved::Waiting(format!(
            "waiting for resolver {resolver:?} to answer ResolutionRequest {name:?}"
        ))))
    };
    let Some(found) = api.get_opt(&name).await? else {
        let request = serde_json::json!({
            "apiVersion": "resolution.tekton.dev/v1beta1",
            "kind": "ResolutionRequest",
            "metadata": {
                "name": name,
                "namespace": run_namespace,
                "labels": {RESOLVER_TYPE_LABEL: resolver},
                "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
            },
            "spec": {"params": params},
        });
        let request: DynamicObject =
            serde_json::from_value(request).expect("a ResolutionRequest is an object");
        return match api.create(&PostParams::default(), &request).await {
            Ok(_) => waiting(),
            Err(kube::Error::Api(e)) if e.code == 409 => waiting(),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Err(Unresolved::Failed(format!(
                "resolver {resolver:?} is not built into tektite (cluster, http, bundles and git are), and the cluster serves no ResolutionRequest (resolution.tekton.dev/v1beta1) for a third-party resolver to answer: install Tekton's resolution CRD and that resolver"
            )))),
            Err(e) => Err(e),
        };
    };
    let status = &found.data["status"];
    let condition = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Succeeded");
    match condition.and_then(|c| c["status"].as_str()) {
        Some("True") => {
            let data = serde_json::from_value::<k8s_openapi::ByteString>(status["data"].clone())
                .map(|b| b.0)
                .unwrap_or_default();
            let Ok(text) = String::from_utf8(data) else {
                return Ok(Err(Unresolved::Failed(format!(
                    "resolver {resolver:?} answered ResolutionRequest {name:?} with data that is not base64 of UTF-8 text"
                ))));
            };
            let (spec, object) =
                match read_document(&format!("ResolutionRequest {name:?}"), &text, wanted) {
                    Ok(r) => r,
                    Err(why) => return Ok(Err(Unresolved::Failed(why))),
                };
            let source = [&status["refSource"], &status["source"]]
                .into_iter()
                .find(|s| s.is_object())
                .and_then(|s| serde_json::from_value::<RefSource>(s.clone()).ok())
                .unwrap_or_default();
            Ok(Ok(Resolved {
                spec,
                name: object,
                source,
            }))
        }
        Some("False") => Ok(Err(Unresolved::Failed(format!(
            "resolver {resolver:?} could not resolve it: {} (ResolutionRequest {name:?})",
            condition
                .and_then(|c| c["message"].as_str())
                .unwrap_or("no message")
        )))),
        _ => {
            let created = found
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(jiff::Timestamp::now);
            let waited = jiff::Timestamp::now().duration_since(created);
            if waited.as_secs() > FETCH_TIMEOUT.as_secs() as i64 {
                return Ok(Err(Unresolved::Failed(format!(
                    "resolver {resolver:?} did not answer ResolutionRequest {name:?} within {FETCH_TIMEOUT:?}"
                ))));
            }
            waiting()
        }
    }
}

/// What a reference to `resolver` with `params` resolves to, read as `T` (a Task's or
/// Pipeline's spec), with its name and where it came from; `Ok(Err(_))` for the run's
/// condition.
#[allow(clippy::too_many_arguments)]
pub async fn resolve_spec<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    settings: &std::sync::RwLock<Settings>,
    sources: &Sources,
    run_namespace: &str,
    owner: Option<&OwnerReference>,
    resolver: &str,
    params: &[Param],
    wanted: Kind,
) -> Result<Result<(T, String, RefSource), Unresolved>, kube::Error> {
    let settings = settings.read().unwrap_or_else(|e| e.into_inner()).clone();
    let r = match resolve(
        client,
        &settings,
        sources,
        run_namespace,
        owner,
        resolver,
        params,
        wanted,
    )
    .await?
    {
        Ok(r) => r,
        Err(why) => return Ok(Err(why)),
    };
    Ok(match serde_path_to_error::deserialize::<_, T>(r.spec) {
        Ok(spec) => Ok((spec, r.name, r.source)),
        Err(e) => Err(Unresolved::Failed(format!(
            "{} {:?} from the {resolver} resolver cannot be read: spec.{}: {}",
            wanted.resource().kind,
            r.name,
            e.path(),
            e.inner()
        ))),
    })
}

/// The http resolver's params, checked.
struct HttpTarget {
    url: http::Uri,
    auth: Option<(String, String, String)>,
    digest: Option<(&'static ring::digest::Algorithm, String)>,
}

fn http_target(params: &[Param]) -> Result<HttpTarget, String> {
    const KNOWN: [&str; 5] = [
        "url",
        "http-username",
        "http-password-secret",
        "http-password-secret-key",
        "digest",
    ];
    if let Some(p) = params.iter().find(|p| !KNOWN.contains(&p.name.as_str())) {
        return Err(format!(
            "the http resolver takes the params {}, not {:?}",
            KNOWN.join(", "),
            p.name
        ));
    }
    let get = |name: &str| string_param(params, "http", name);
    let url = get("url")
        .transpose()?
        .ok_or("the http resolver needs the param \"url\"")?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("the http resolver's url {url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "the http resolver fetches http and https URLs, not {url:?}"
        ));
    }
    let user = get("http-username").transpose()?;
    let secret = get("http-password-secret").transpose()?;
    let key = get("http-password-secret-key")
        .transpose()?
        .unwrap_or_else(|| "password".into());
    let auth = match (user, secret) {
        (Some(u), Some(s)) => Some((u, s, key)),
        (None, None) => None,
        _ => {
            return Err(
                "the http resolver takes http-username and http-password-secret together".into(),
            );
        }
    };
    let digest = match get("digest").transpose()? {
        None => None,
        Some(d) => {
            let (algorithm, hex) = d.split_once(':').ok_or_else(|| {
                format!("digest {d:?} must be <algorithm>:<hex>, e.g. sha256:...")
            })?;
            let algorithm = match algorithm {
                "sha256" => &ring::digest::SHA256,
                "sha512" => &ring::digest::SHA512,
                other => {
                    return Err(format!(
                        "digest algorithm {other:?} is not supported: use sha256 or sha512"
                    ));
                }
            };
            Some((algorithm, hex.to_ascii_lowercase()))
        }
    };
    Ok(HttpTarget {
        url: uri,
        auth,
        digest,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetches the document at the params' `url` and reads it as a `wanted`.
/// One GET of `request` (for `url`, in messages), the whole body of at most
/// [`MAX_DOCUMENT`] bytes, within `limit`.
async fn get(
    request: http::request::Builder,
    url: &str,
    limit: std::time::Duration,
) -> Result<hyper::body::Bytes, String> {
    use http_body_util::{BodyExt, Empty, Limited};
    let request = request
        .body(Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("the system's TLS roots cannot be read: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<hyper::body::Bytes>>(https);
    tokio::time::timeout(limit, async {
        let response = http
            .request(request)
            .await
            .map_err(|e| format!("fetching {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("fetching {url}: the server answered {status}"));
        }
        Limited::new(response.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("fetching {url}: the document could not be read whole (at most {MAX_DOCUMENT} bytes): {e}"))
    })
    .await
    .map_err(|_| format!("fetching {url}: no answer within {limit:?} (fetch-timeout)"))?
}

async fn fetch_http(
    client: &kube::Client,
    config: &HttpConfig,
    run_namespace: &str,
    params: &[Param],
    wanted: Kind,
) -> Result<Resolved, String> {
    let target = http_target(params)?;
    let mut request = http::Request::get(target.url.clone());
    if let Some((user, secret, key)) = &target.auth {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), run_namespace);
        let found = secrets
            .get_opt(secret)
            .await
            .map_err(|e| format!("reading Secret {secret:?} for the http resolver: {e}"))?
            .ok_or_else(|| {
                format!(
                    "the http resolver's Secret {secret:?} is not in namespace {run_namespace:?}"
                )
            })?;
        let password = found
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| format!("Secret {secret:?} has no key {key:?}"))?;
        let pair = [user.as_bytes(), b":", &password.0].concat();
        let basic = serde_json::to_value(k8s_openapi::ByteString(pair)).unwrap_or_default();
        request = request.header(
            http::header::AUTHORIZATION,
            format!("Basic {}", basic.as_str().unwrap_or_default()),
        );
    }
    let url = target.url.to_string();
    let fetched = get(request, &url, config.fetch_timeout).await?;
    let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &fetched).as_ref());
    if let Some((algorithm, expected)) = &target.digest {
        let got = hex(ring::digest::digest(algorithm, &fetched).as_ref());
        if &got != expected {
            return Err(format!(
                "the document at {url} does not have the digest given ({expected}): it is {got}"
            ));
        }
    }
    let text = String::from_utf8(fetched.to_vec())
        .map_err(|_| format!("the document at {url} is not UTF-8 text"))?;
    let (spec, name) = read_document(&url, &text, wanted)?;
    Ok(Resolved {
        spec,
        name,
        source: RefSource {
            uri: Some(url),
            digest: BTreeMap::from([("sha256".to_owned(), sha256)]),
            entry_point: None,
        },
    })
}

/// The bundles resolver (Tekton's params: `bundle`, `name`, `kind`, `secret`): the
/// object from its layer of the OCI image, credentials from the docker config Secret
/// named (else anonymous), recorded with the bundle's digest.
async fn fetch_bundle(
    client: &kube::Client,
    images: &crate::images::Images,
    run_namespace: &str,
    params: &[Param],
    wanted: Kind,
) -> Result<Resolved, String> {
    let get = |name: &str| string_param(params, "bundles", name).transpose();
    let required = |name: &str, what: &str| {
        get(name)?.ok_or_else(|| format!("the bundles resolver needs the param {name:?} ({what})"))
    };
    let bundle = required("bundle", "the image reference of the bundle")?;
    let name = required("name", "the name of the object in the bundle")?;
    let default_kind = wanted.resource().kind.to_lowercase();
    let kind = get("kind")?.unwrap_or_else(|| default_kind.clone());
    if kind != default_kind {
        return Err(format!(
            "the bundles resolver is asked for a {kind} where a {default_kind} is referenced (param kind)"
        ));
    }
    let auth = match get("secret")? {
        None => oci_client::secrets::RegistryAuth::Anonymous,
        Some(secret) => {
            let secrets: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(client.clone(), run_namespace);
            let found = secrets
                .get_opt(&secret)
                .await
                .map_err(|e| format!("reading Secret {secret:?} for the bundles resolver: {e}"))?
                .ok_or_else(|| {
                    format!("the bundles resolver's Secret {secret:?} is not in namespace {run_namespace:?}")
                })?;
            let data: BTreeMap<String, Vec<u8>> = found
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            let registry = crate::images::Images::registry_of(&bundle).unwrap_or_default();
            crate::images::auth_for(&registry, &[data])
        }
    };
    let (text, digest) = tokio::time::timeout(
        FETCH_TIMEOUT,
        images.bundle_object(&bundle, &auth, &kind, &name),
    )
    .await
    .map_err(|_| format!("fetching the bundle {bundle:?}: no answer within {FETCH_TIMEOUT:?}"))?
    .map_err(|e| e.to_string())?;
    let (spec, found) = read_document(&bundle, &text, wanted)?;
    if found != name {
        return Err(format!(
            "the bundle {bundle:?}'s layer for {kind} {name:?} holds {kind} {found:?}"
        ));
    }
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", &digest));
    Ok(Resolved {
        spec,
        name: name.clone(),
        source: RefSource {
            uri: Some(bundle),
            digest: BTreeMap::from([(algorithm.to_owned(), hex.to_owned())]),
            entry_point: Some(name),
        },
    })
}

/// The git resolver in clone mode (Tekton's params `url`, `revision`, `pathInRepo`):
/// the file at the commit the revision names, recorded as `git+URL` with the commit's
/// sha1 and the path. The API mode (`org`, `repo` with a token Secret) is refused, saying so.
async fn fetch_git(
    git: &crate::git::Git,
    config: &GitConfig,
    params: &[Param],
    wanted: Kind,
) -> Result<Resolved, String> {
    let get = |name: &str| string_param(params, "git", name).transpose();
    if get("repo")?.is_some() || get("org")?.is_some() {
        return Err("the git resolver's API mode (org, repo, token) is not supported yet: give url (clone mode)".into());
    }
    let url = match (get("url")?, &config.default_url) {
        (Some(u), _) => u,
        (None, Some(d)) => d.clone(),
        (None, None) => {
            return Err(
                "the git resolver needs the param \"url\" (the repository to clone)".into(),
            );
        }
    };
    let revision = get("revision")?.unwrap_or_else(|| config.default_revision.clone());
    let path = get("pathInRepo")?.ok_or_else(|| {
        "the git resolver needs the param \"pathInRepo\" (the file's path in the repository)"
            .to_owned()
    })?;
    let (text, commit) = git
        .file(&url, &revision, &path, config.fetch_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let uri = format!("git+{url}");
    let (spec, name) = read_document(&format!("{url} at {revision} ({path})"), &text, wanted)?;
    Ok(Resolved {
        spec,
        name,
        source: RefSource {
            uri: Some(uri),
            digest: BTreeMap::from([("sha1".to_owned(), commit)]),
            entry_point: Some(path),
        },
    })
}

/// Artifact Hub's public API, the hub resolver's default.
const ARTIFACT_HUB: &str = "https://artifacthub.io";

/// `0.6` as a version to compare: missing parts are 0.
fn hub_version(v: &str) -> Option<semver::Version> {
    let mut parts: Vec<&str> = v.trim().trim_start_matches('v').split('.').collect();
    while parts.len() < 3 {
        parts.push("0");
    }
    semver::Version::parse(&parts.join(".")).ok()
}

/// The hub resolver (Tekton's params `name`, `version` (a version, or a constraint such
/// as `>= 0.5`), `kind`, `catalog`, `type` (`artifact`, Artifact Hub; `tekton`, Tekton
/// Hub), `url`): the versions the hub lists, the highest that meets the version, and its
/// YAML; recorded with the URL and the document's sha256.
async fn fetch_hub(
    config: &HttpConfig,
    hub_config: &HubConfig,
    params: &[Param],
    wanted: Kind,
) -> Result<Resolved, String> {
    let get_param = |name: &str| string_param(params, "hub", name).transpose();
    let kind = get_param("kind")?.unwrap_or_else(|| wanted.resource().kind.to_lowercase());
    if kind != wanted.resource().kind.to_lowercase() {
        return Err(format!(
            "the hub resolver is asked for a {kind} where a {} is referenced (param kind)",
            wanted.resource().kind.to_lowercase()
        ));
    }
    let name = get_param("name")?
        .ok_or("the hub resolver needs the param \"name\" (the Task or Pipeline in the hub)")?;
    let version = get_param("version")?.ok_or(
        "the hub resolver needs the param \"version\" (a version such as \"0.6\", or a constraint such as \">= 0.5\")",
    )?;
    let hub = get_param("type")?.unwrap_or_else(|| hub_config.default_type.clone());
    let bases: Vec<String> = match (get_param("url")?, hub.as_str()) {
        (Some(u), _) => vec![u],
        (None, "artifact") => hub_config.artifact_hub_urls.clone(),
        (None, "tekton") if !hub_config.tekton_hub_urls.is_empty() => {
            hub_config.tekton_hub_urls.clone()
        }
        (None, "tekton") => {
            return Err("the hub resolver's tekton type needs the param \"url\" or tekton-hub-urls in hubresolver-config (Tekton Hub has no public API any more)".into());
        }
        (None, other) => {
            return Err(format!(
                "the hub resolver's type is artifact or tekton, not {other:?}"
            ));
        }
    };
    let bases: Vec<String> = bases
        .iter()
        .map(|b| b.trim_end_matches('/').to_owned())
        .collect();
    if let Some(bad) = bases
        .iter()
        .find(|b| !b.starts_with("http://") && !b.starts_with("https://"))
    {
        return Err(format!(
            "the hub resolver's url must be http or https, not {bad:?}"
        ));
    }
    let catalog = match (get_param("catalog")?, hub.as_str(), kind.as_str()) {
        (Some(c), _, _) => c,
        (None, "tekton", _) => hub_config.tekton_catalog.clone(),
        (None, _, "pipeline") => hub_config.artifact_pipeline_catalog.clone(),
        (None, _, "task") => hub_config.artifact_task_catalog.clone(),
        (None, _, _) => {
            return Err("the hub resolver needs the param \"catalog\" for a stepaction".into());
        }
    };
    // A plain version is exact (as Tekton's go-version reads it), else a constraint.
    let wanted_version: Box<dyn Fn(&semver::Version) -> bool + Send + Sync> = match hub_version(
        &version,
    ) {
        Some(exact) => Box::new(move |v| *v == exact),
        None => {
            let req = semver::VersionReq::parse(&version.replace(">= ", ">=").replace("<= ", "<=").replace("> ", ">").replace("< ", "<"))
                .map_err(|e| format!("the hub resolver's version {version:?} is neither a version nor a constraint: {e}"))?;
            Box::new(move |v| req.matches(v))
        }
    };
    // The hubs in order: the first that answers wins.
    let mut failures = Vec::new();
    for base in &bases {
        match from_hub(
            config,
            base,
            &hub,
            &kind,
            &catalog,
            &name,
            &version,
            &*wanted_version,
            wanted,
        )
        .await
        {
            Ok(r) => return Ok(r),
            Err(why) => failures.push(why),
        }
    }
    Err(failures.join("; "))
}

/// The highest version `base` lists that `wanted_version` takes, and its document.
#[allow(clippy::too_many_arguments)]
async fn from_hub(
    config: &HttpConfig,
    base: &str,
    hub: &str,
    kind: &str,
    catalog: &str,
    name: &str,
    version: &str,
    wanted_version: &(dyn Fn(&semver::Version) -> bool + Send + Sync),
    wanted: Kind,
) -> Result<Resolved, String> {
    let request =
        |url: &str| http::Request::get(url).header(http::header::ACCEPT, "application/json");
    let json = |url: String| async move {
        let bytes = get(request(&url), &url, config.fetch_timeout).await?;
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| format!("{url} did not answer JSON: {e}"))
            .map(|v| (url, v))
    };
    let (list_url, listed) = match hub {
        "tekton" => json(format!("{base}/v1/resource/{catalog}/{kind}/{name}")).await?,
        _ => {
            json(format!(
                "{base}/api/v1/packages/tekton-{kind}/{catalog}/{name}"
            ))
            .await?
        }
    };
    let versions = match hub {
        "tekton" => &listed["data"]["versions"],
        _ => &listed["available_versions"],
    };
    let chosen = versions
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["prerelease"] != true)
        .filter_map(|v| v["version"].as_str())
        .filter_map(|text| Some((hub_version(text)?, text.to_owned())))
        .filter(|(v, _)| wanted_version(v))
        .max_by(|a, b| a.0.cmp(&b.0))
        .ok_or_else(|| format!("{list_url} lists no version of {name:?} that is {version:?}"))?;
    // Artifact Hub writes versions as x.y.0, Tekton Hub as x.y.
    let at = match hub {
        "tekton" => format!("{}.{}", chosen.0.major, chosen.0.minor),
        _ => chosen.0.to_string(),
    };
    let (url, answer) = match hub {
        "tekton" => {
            json(format!(
                "{base}/v1/resource/{catalog}/{kind}/{name}/{at}/yaml"
            ))
            .await?
        }
        _ => {
            json(format!(
                "{base}/api/v1/packages/tekton-{kind}/{catalog}/{name}/{at}"
            ))
            .await?
        }
    };
    let yaml = match hub {
        "tekton" => answer["data"]["yaml"].as_str(),
        _ => answer["data"]["manifestRaw"].as_str(),
    }
    .ok_or_else(|| format!("{url} answered no document"))?;
    let (spec, found) = read_document(&url, yaml, wanted)?;
    Ok(Resolved {
        spec,
        name: found,
        source: RefSource {
            uri: Some(url),
            digest: BTreeMap::from([(
                "sha256".to_owned(),
                hex(ring::digest::digest(&ring::digest::SHA256, yaml.as_bytes()).as_ref()),
            )]),
            entry_point: None,
        },
    })
}

/// The one document of `text` of kind `wanted` (any Tekton version, converted), as its
/// spec and name.
fn read_document(
    url: &str,
    text: &str,
    wanted: Kind,
) -> Result<(serde_json::Value, String), String> {
    use tektite_api::document::{Object, Source, load};
    let docs = load(&[Source { name: url, text }]);
    let kind = wanted.resource().kind;
    let mut found = docs.iter().filter(|d| d.kind == kind);
    let (Some(doc), None) = (found.next(), found.next()) else {
        return Err(format!(
            "the document at {url} must hold exactly one {kind}; it holds {}",
            docs.iter()
                .map(|d| d.display_name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if let Some(p) = doc.problems.first() {
        return Err(format!("{kind} at {url}: {}: {}", p.path, p.message));
    }
    let spec = match &doc.object {
        Some(Object::Task(t)) => serde_json::to_value(&t.spec),
        Some(Object::Pipeline(p)) => serde_json::to_value(&p.spec),
        Some(Object::StepAction(a)) => serde_json::to_value(&a.spec),
        _ => return Err(format!("the document at {url} is not a readable {kind}")),
    }
    .map_err(|e| e.to_string())?;
    let name = doc.name.trim_end_matches('*').to_owned();
    Ok((spec, name))
}

/// What the cluster resolver fetched: the object's `spec`, and where it came from.
#[derive(Clone, Debug, PartialEq)]
struct Fetched {
    pub spec: serde_json::Value,
    pub source: RefSource,
}

/// Fetches `wanted` `name` from namespace `ns`: `Ok(None)` when there is none.
async fn fetch_cluster(
    client: &kube::Client,
    wanted: Kind,
    ns: &str,
    name: &str,
) -> Result<Option<Fetched>, kube::Error> {
    let resource = wanted.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let Some(object) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let sha256 = hex(ring::digest::digest(
        &ring::digest::SHA256,
        &serde_json::to_vec(&spec).unwrap_or_default(),
    )
    .as_ref());
    Ok(Some(Fetched {
        spec,
        source: RefSource {
            uri: Some(format!(
                "/apis/{}/namespaces/{ns}/{}/{name}@{uid}",
                resource.api_version, resource.plural
            )),
            digest: BTreeMap::from([("sha256".to_owned(), sha256)]),
            entry_point: Some(name.to_owned()),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<Param> {
        pairs
            .iter()
            .map(|(n, v)| Param {
                name: (*n).into(),
                value: ParamValue::String((*v).into()),
            })
            .collect()
    }

    #[test]
    fn a_cluster_reference_names_its_namespace_or_takes_the_runs() {
        let c = ClusterConfig::default();
        assert_eq!(
            cluster_target(
                &params(&[("kind", "task"), ("name", "lint"), ("namespace", "shared")]),
                Kind::Task,
                "ci",
                &c
            ),
            Ok(("shared".into(), "lint".into()))
        );
        assert_eq!(
            cluster_target(&params(&[("name", "lint")]), Kind::Task, "ci", &c),
            Ok(("ci".into(), "lint".into()))
        );
        let c = ClusterConfig::from_config(&BTreeMap::from([(
            "default-namespace".into(),
            "catalog".into(),
        )]));
        assert_eq!(
            cluster_target(&params(&[("name", "lint")]), Kind::Task, "ci", &c),
            Ok(("catalog".into(), "lint".into()))
        );
    }

    #[test]
    fn bad_params_and_namespaces_outside_the_lists_are_refused_with_why() {
        let c = ClusterConfig::default();
        let err =
            |p: &[(&str, &str)], kind| cluster_target(&params(p), kind, "ci", &c).unwrap_err();
        assert!(
            err(&[("kind", "pipeline"), ("name", "x")], Kind::Task)
                .contains("asks the cluster resolver for a pipeline; it needs a task")
        );
        assert!(err(&[("kind", "task")], Kind::Task).contains("needs the param \"name\""));
        assert!(err(&[("name", "x"), ("url", "y")], Kind::Task).contains("not \"url\""));

        let c = ClusterConfig::from_config(&BTreeMap::from([(
            "allowed-namespaces".into(),
            "catalog, shared".into(),
        )]));
        assert!(
            cluster_target(
                &params(&[("name", "x"), ("namespace", "shared")]),
                Kind::Task,
                "ci",
                &c
            )
            .is_ok()
        );
        let why = cluster_target(
            &params(&[("name", "x"), ("namespace", "secret")]),
            Kind::Task,
            "ci",
            &c,
        )
        .unwrap_err();
        assert_eq!(
            why,
            "the cluster resolver may read only namespaces catalog, shared (allowed-namespaces), not \"secret\""
        );

        let c = ClusterConfig::from_config(&BTreeMap::from([
            ("blocked-namespaces".into(), "*".into()),
            ("allowed-namespaces".into(), "catalog".into()),
        ]));
        assert!(
            cluster_target(
                &params(&[("name", "x"), ("namespace", "catalog")]),
                Kind::Task,
                "ci",
                &c
            )
            .is_ok()
        );
        assert!(cluster_target(&params(&[("name", "x")]), Kind::Task, "ci", &c).is_err());
        let c = ClusterConfig::from_config(&BTreeMap::from([(
            "blocked-namespaces".into(),
            "kube-system".into(),
        )]));
        let why = cluster_target(
            &params(&[("name", "x"), ("namespace", "kube-system")]),
            Kind::Task,
            "ci",
            &c,
        )
        .unwrap_err();
        assert!(why.contains("(blocked-namespaces)"), "{why}");
    }
}
