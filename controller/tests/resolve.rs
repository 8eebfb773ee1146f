//! The http resolver against a real HTTP server on loopback (one the test starts), with
//! basic auth from a Secret of the mocked API server, a digest to check, and the
//! failures a user must be told about.

mod common;

use std::convert::Infallible;

use common::{Expect, at, harness};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tektite_api::v1::{Param, ParamValue};
use tektite_controller::images::Images;
use tektite_controller::resolve::{HttpConfig, Kind, Settings, Sources, Unresolved, resolve};

const TASK: &str = "apiVersion: tekton.dev/v1beta1\nkind: Task\nmetadata: {name: lint}\nspec:\n  steps:\n    - {name: run, image: alpine, script: 'echo lint'}\n";

/// Serves `/task.yaml`, `/private.yaml` (basic auth git:s3cret), `/pipeline.yaml` and 404
/// for the rest; the address.
async fn server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|r: Request<Incoming>| async move {
                    let auth = r
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if r.uri().path() == "/hang" {
                        // Never answers: the fetch must give up on its own.
                        std::future::pending::<()>().await;
                    }
                    let (status, body) = match r.uri().path() {
                        "/task.yaml" => (StatusCode::OK, TASK.to_owned()),
                        // base64 of git:s3cret
                        "/private.yaml" if auth.as_deref() == Some("Basic Z2l0OnMzY3JldA==") => {
                            (StatusCode::OK, TASK.to_owned())
                        }
                        "/private.yaml" => (StatusCode::UNAUTHORIZED, String::new()),
                        "/pipeline.yaml" => (
                            StatusCode::OK,
                            "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  tasks: [{name: a, taskRef: {name: lint}}]\n".to_owned(),
                        ),
                        // Artifact Hub's API, as it answers (available versions; a package's manifest).
                        "/api/v1/packages/tekton-task/tekton-catalog-tasks/lint" => (
                            StatusCode::OK,
                            json!({"version": "0.6.0", "available_versions": [
                                {"version": "0.5.0", "prerelease": false},
                                {"version": "0.6.0", "prerelease": false},
                                {"version": "0.7.0", "prerelease": true}]})
                            .to_string(),
                        ),
                        "/api/v1/packages/tekton-task/tekton-catalog-tasks/lint/0.5.0" => (
                            StatusCode::OK,
                            json!({"data": {"manifestRaw": TASK.replace("echo lint", "echo lint 0.5")}}).to_string(),
                        ),
                        "/api/v1/packages/tekton-task/tekton-catalog-tasks/lint/0.6.0" => (
                            StatusCode::OK,
                            json!({"data": {"manifestRaw": TASK}}).to_string(),
                        ),
                        // Tekton Hub's API.
                        "/v1/resource/Tekton/task/lint" => (
                            StatusCode::OK,
                            json!({"data": {"versions": [{"version": "0.5"}, {"version": "0.6"}]}}).to_string(),
                        ),
                        "/v1/resource/Tekton/task/lint/0.6/yaml" => (
                            StatusCode::OK,
                            json!({"data": {"yaml": TASK}}).to_string(),
                        ),
                        _ => (StatusCode::NOT_FOUND, String::new()),
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn params(pairs: &[(&str, &str)]) -> Vec<Param> {
    pairs
        .iter()
        .map(|(n, v)| Param {
            name: (*n).into(),
            value: ParamValue::String((*v).into()),
        })
        .collect()
}

/// What `resolver` resolves `pairs` to, for a run in namespace ci.
async fn ask(
    client: &kube::Client,
    sources: &Sources,
    resolver: &str,
    pairs: &[(&str, String)],
    kind: Kind,
) -> Result<tektite_controller::resolve::Resolved, Unresolved> {
    let p = owned_params(pairs);
    resolve(
        client,
        &Settings::default(),
        sources,
        "ci",
        None,
        resolver,
        &p,
        kind,
    )
    .await
    .unwrap()
}

fn owned_params(pairs: &[(&str, String)]) -> Vec<Param> {
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    params(&borrowed)
}

fn sha256(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_task_is_fetched_over_http_converted_and_recorded() {
    let addr = server().await;
    let h = harness(vec![], vec![], vec![], at("2026-11-22T10:00:00Z"));
    let url = format!("http://{addr}/task.yaml");
    let digest = format!("sha256:{}", sha256(TASK));
    let resolved = resolve(
        &h.ctx.client,
        &Settings::default(),
        &Sources::default(),
        "ci",
        None,
        "http",
        &params(&[("url", &url), ("digest", &digest)]),
        Kind::Task,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resolved.name, "lint");
    assert_eq!(resolved.spec["steps"][0]["name"], "run");
    assert_eq!(resolved.source.uri.as_deref(), Some(url.as_str()));
    assert_eq!(resolved.source.digest["sha256"], sha256(TASK));
    h.finish().await;
}

#[tokio::test]
async fn basic_auth_comes_from_a_secret_of_the_runs_namespace() {
    let addr = server().await;
    let h = harness(
        vec![
            Expect::get("/api/v1/namespaces/ci/secrets/http-password").reply(
                200,
                json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "http-password", "namespace": "ci"},
                    "data": {"password": "czNjcmV0"}}),
            ),
        ],
        vec![],
        vec![],
        at("2026-11-22T10:00:00Z"),
    );
    let url = format!("http://{addr}/private.yaml");
    let resolved = resolve(
        &h.ctx.client,
        &Settings::default(),
        &Sources::default(),
        "ci",
        None,
        "http",
        &params(&[
            ("url", &url),
            ("http-username", "git"),
            ("http-password-secret", "http-password"),
        ]),
        Kind::Task,
    )
    .await
    .unwrap();
    assert_eq!(resolved.map(|r| r.name), Ok("lint".to_owned()));
    h.finish().await;
}

#[tokio::test]
async fn what_cannot_be_had_is_said_in_the_runs_terms() {
    let addr = server().await;
    let h = harness(vec![], vec![], vec![], at("2026-11-22T10:00:00Z"));
    let fails = |pairs: Vec<(&'static str, String)>, kind: Kind| {
        let client = h.ctx.client.clone();
        async move {
            let p: Vec<Param> = pairs
                .iter()
                .map(|(n, v)| Param {
                    name: (*n).into(),
                    value: ParamValue::String(v.clone()),
                })
                .collect();
            resolve(
                &client,
                &Settings::default(),
                &Sources::default(),
                "ci",
                None,
                "http",
                &p,
                kind,
            )
            .await
            .unwrap()
            .unwrap_err()
            .to_string()
        }
    };
    let base = format!("http://{addr}");
    let why = fails(vec![("url", format!("{base}/missing.yaml"))], Kind::Task).await;
    assert!(why.contains("the server answered 404 Not Found"), "{why}");
    let why = fails(vec![("url", format!("{base}/private.yaml"))], Kind::Task).await;
    assert!(why.contains("401 Unauthorized"), "{why}");
    let why = fails(
        vec![
            ("url", format!("{base}/task.yaml")),
            ("digest", "sha256:00".into()),
        ],
        Kind::Task,
    )
    .await;
    assert!(why.contains("does not have the digest given (00)"), "{why}");
    let why = fails(vec![("url", format!("{base}/pipeline.yaml"))], Kind::Task).await;
    assert!(
        why.contains("must hold exactly one Task; it holds Pipeline/p"),
        "{why}"
    );
    let why = fails(vec![("url", "ftp://example.com/t.yaml".into())], Kind::Task).await;
    assert!(why.contains("http and https URLs"), "{why}");
    let why = fails(
        vec![("url", format!("{base}/task.yaml")), ("branch", "x".into())],
        Kind::Task,
    )
    .await;
    assert!(why.contains("not \"branch\""), "{why}");
    let why = fails(vec![], Kind::Task).await;
    assert!(why.contains("needs the param \"url\""), "{why}");
    // Nothing listens here.
    let why = fails(
        vec![("url", "http://127.0.0.1:1/t.yaml".into())],
        Kind::Task,
    )
    .await;
    assert!(
        why.starts_with("fetching http://127.0.0.1:1/t.yaml:"),
        "{why}"
    );
    h.finish().await;
}

const REQUESTS: &str = "/apis/resolution.tekton.dev/v1beta1/namespaces/ci/resolutionrequests";

/// A resolver tektite does not have built in is asked as Tekton asks it: a
/// ResolutionRequest owned by the run, labelled with the resolver, named after the run
/// and params (the same name on every reconcile); the run waits until it is answered, then
/// reads the document (base64 in status.data) and its refSource, or fails with the
/// resolver's message; with no ResolutionRequest API on the cluster it says so.
#[tokio::test]
async fn a_third_party_resolver_is_asked_through_a_resolution_request() {
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "tekton.dev/v1".into(),
        kind: "TaskRun".into(),
        name: "build".into(),
        uid: "u-1".into(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let p = params(&[("repo", "tektoncd/catalog"), ("task", "lint")]);
    let ask = |h: &common::Harness| {
        let (client, owner, p) = (h.ctx.client.clone(), owner.clone(), p.clone());
        async move {
            resolve(
                &client,
                &Settings::default(),
                &Sources::default(),
                "ci",
                Some(&owner),
                "acme",
                &p,
                Kind::Task,
            )
            .await
            .unwrap()
        }
    };
    // Its name: the resolver and a digest of the run and params, the same every time.
    let name = format!(
        "acme-{}",
        &sha256(&format!("ci/build/{}", serde_json::to_string(&p).unwrap()))[..32]
    );
    let at_name = format!("{REQUESTS}/{name}");
    // The first reconcile creates it and waits; so does one that finds it unanswered.
    let created = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = created.clone();
    let h = harness(
        vec![
            Expect::get(&at_name).fail(404, "NotFound"),
            Expect::post(REQUESTS).body(move |b: &serde_json::Value| {
                assert_eq!(
                    b["metadata"]["labels"]["resolution.tekton.dev/type"],
                    "acme"
                );
                assert_eq!(b["metadata"]["ownerReferences"][0]["name"], "build");
                assert_eq!(
                    b["spec"]["params"][0],
                    json!({"name": "repo", "value": "tektoncd/catalog"})
                );
                let name = b["metadata"]["name"].as_str().unwrap();
                assert!(name.starts_with("acme-") && name.len() == 37, "{name}");
                *seen.lock().unwrap() = name.to_owned();
            }),
        ],
        vec![],
        vec![],
        at("2026-12-03T10:00:00Z"),
    );
    let Err(Unresolved::Waiting(why)) = ask(&h).await else {
        panic!("the run waits for the resolver")
    };
    assert!(why.contains("waiting for resolver \"acme\""), "{why}");
    h.finish().await;
    assert_eq!(*created.lock().unwrap(), name);
    let request = |status: serde_json::Value| {
        json!({"apiVersion": "resolution.tekton.dev/v1beta1", "kind": "ResolutionRequest",
            "metadata": {"name": name, "namespace": "ci", "creationTimestamp": jiff::Timestamp::now().to_string()},
            "spec": {"params": []}, "status": status})
    };
    let data = serde_json::to_value(k8s_openapi::ByteString(TASK.as_bytes().to_vec())).unwrap();
    let h = harness(
        vec![
            Expect::get(&at_name).reply(200, request(json!({}))),
            Expect::get(&at_name).reply(200, request(json!({
                "conditions": [{"type": "Succeeded", "status": "True"}], "data": data,
                "refSource": {"uri": "https://hub.example/lint", "digest": {"sha256": "ab"}}}))),
            Expect::get(&at_name).reply(200, request(json!({
                "conditions": [{"type": "Succeeded", "status": "False", "message": "no such task in the hub"}]}))),
        ],
        vec![],
        vec![],
        at("2026-12-03T10:00:00Z"),
    );
    assert!(matches!(ask(&h).await, Err(Unresolved::Waiting(_))));
    let resolved = ask(&h).await.unwrap();
    assert_eq!(resolved.name, "lint");
    assert_eq!(resolved.spec["steps"][0]["name"], "run");
    assert_eq!(
        resolved.source.uri.as_deref(),
        Some("https://hub.example/lint")
    );
    let Err(Unresolved::Failed(why)) = ask(&h).await else {
        panic!("the resolver's failure fails the run")
    };
    assert!(
        why.contains("no such task in the hub") && why.contains(&name),
        "{why}"
    );
    h.finish().await;
    // No ResolutionRequest API on the cluster.
    let h = harness(
        vec![
            Expect::get(&at_name).fail(404, "NotFound"),
            Expect::post(REQUESTS).fail(404, "NotFound"),
        ],
        vec![],
        vec![],
        at("2026-12-03T10:00:00Z"),
    );
    let Err(Unresolved::Failed(why)) = ask(&h).await else {
        panic!("no ResolutionRequest API fails the run")
    };
    assert!(why.contains("serves no ResolutionRequest"), "{why}");
    h.finish().await;
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_at_the_fetch_timeout() {
    let addr = server().await;
    let h = harness(vec![], vec![], vec![], at("2026-11-22T10:00:00Z"));
    let settings = Settings {
        http: HttpConfig::from_config(&std::collections::BTreeMap::from([(
            "fetch-timeout".to_owned(),
            "300ms".to_owned(),
        )]))
        .unwrap(),
        ..Settings::default()
    };
    let began = std::time::Instant::now();
    let why = resolve(
        &h.ctx.client,
        &settings,
        &Sources::default(),
        "ci",
        None,
        "http",
        &params(&[("url", &format!("http://{addr}/hang"))]),
        Kind::Task,
    )
    .await
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        why.ends_with("no answer within 300ms (fetch-timeout)"),
        "{why}"
    );
    assert!(began.elapsed() < std::time::Duration::from_secs(5));
    // The limit is Tekton's minute at most, and a value that cannot be used says so.
    let long = HttpConfig::from_config(&std::collections::BTreeMap::from([(
        "fetch-timeout".to_owned(),
        "10m".to_owned(),
    )]))
    .unwrap();
    assert_eq!(long.fetch_timeout, std::time::Duration::from_secs(60));
    let bad = HttpConfig::from_config(&std::collections::BTreeMap::from([(
        "fetch-timeout".to_owned(),
        "soon".to_owned(),
    )]))
    .unwrap_err();
    assert!(bad[0].starts_with("fetch-timeout: "), "{bad:?}");
    h.finish().await;
}

const PIPELINE: &str = "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: ship}\nspec:\n  tasks:\n    - {name: lint, taskRef: {name: lint}}\n";

/// The bundles resolver against a real registry on 127.0.0.1 (a bundle the test pushes,
/// in Tekton's layout): the object named, of the kind referenced, converted to v1 and
/// recorded with the bundle's digest; and every way it cannot be had, said with why.
#[tokio::test]
async fn a_bundle_in_a_real_registry_resolves_its_task_and_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let registry = tektite_tests::registry::Registry::start(dir.path()).await;
    let bundle = registry
        .push_bundle(
            "catalog/ship",
            "0.1",
            &[("task", "lint", TASK), ("pipeline", "ship", PIPELINE)],
        )
        .await;
    let images = Sources {
        images: std::sync::Arc::new(Images::new(vec![registry.addr.clone()], "linux/amd64")),
        git: Default::default(),
    };
    let h = harness(vec![], vec![], vec![], at("2026-12-03T10:00:00Z"));
    let fetch = |pairs: Vec<(&'static str, String)>, kind: Kind| {
        let (client, sources) = (h.ctx.client.clone(), &images);
        async move { ask(&client, sources, "bundles", &pairs, kind).await }
    };
    let task = fetch(
        vec![
            ("bundle", bundle.clone()),
            ("name", "lint".into()),
            ("kind", "task".into()),
        ],
        Kind::Task,
    )
    .await
    .unwrap();
    assert_eq!(task.name, "lint");
    assert_eq!(task.spec["steps"][0]["script"], "echo lint");
    assert_eq!(task.source.uri.as_deref(), Some(bundle.as_str()));
    assert_eq!(task.source.entry_point.as_deref(), Some("lint"));
    assert_eq!(
        task.source.digest["sha256"].len(),
        64,
        "{:?}",
        task.source.digest
    );
    // The kind defaults to the one referenced.
    let pipeline = fetch(
        vec![("bundle", bundle.clone()), ("name", "ship".into())],
        Kind::Pipeline,
    )
    .await
    .unwrap();
    assert_eq!(pipeline.spec["tasks"][0]["name"], "lint");

    let why =
        |r: Result<tektite_controller::resolve::Resolved, Unresolved>| r.unwrap_err().to_string();
    let missing = why(fetch(
        vec![("bundle", bundle.clone()), ("name", "nope".into())],
        Kind::Task,
    )
    .await);
    assert!(
        missing.contains("holds no task \"nope\"")
            && missing.contains("task \"lint\", pipeline \"ship\""),
        "{missing}"
    );
    let param = why(fetch(vec![("name", "lint".into())], Kind::Task).await);
    assert_eq!(
        param,
        "the bundles resolver needs the param \"bundle\" (the image reference of the bundle)"
    );
    let kind = why(fetch(
        vec![
            ("bundle", bundle.clone()),
            ("name", "ship".into()),
            ("kind", "pipeline".into()),
        ],
        Kind::Task,
    )
    .await);
    assert!(
        kind.contains("asked for a pipeline where a task is referenced"),
        "{kind}"
    );
    let absent = why(fetch(
        vec![
            ("bundle", format!("{}/catalog/none:1", registry.addr)),
            ("name", "lint".into()),
        ],
        Kind::Task,
    )
    .await);
    assert!(
        absent.contains("catalog/none:1") && absent.contains("registry"),
        "{absent}"
    );
    // A bundle named by its digest is read again without the registry.
    let pinned = format!(
        "{}/catalog/ship@sha256:{}",
        registry.addr, task.source.digest["sha256"]
    );
    drop(registry);
    let again = fetch(
        vec![("bundle", pinned), ("name", "lint".into())],
        Kind::Task,
    )
    .await
    .unwrap();
    assert_eq!(again.spec["steps"][0]["script"], "echo lint");
    h.finish().await;
}

/// The git resolver against a real git server on 127.0.0.1 (`git daemon`) holding a
/// repository the test makes: a Task by branch, tag and commit id, recorded with the
/// commit; a commit's file read again without the server; and every way it cannot be had.
#[tokio::test]
async fn a_task_in_a_real_git_repository_resolves_by_branch_tag_and_commit() {
    let base = tempfile::tempdir().unwrap();
    let repo = base.path().join("catalog");
    std::fs::create_dir_all(repo.join("task/lint")).unwrap();
    tektite_tests::git_repo(
        &repo,
        &[("task/lint/lint.yaml", TASK), ("README.md", "catalog")],
    );
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["tag", "v0.1"]);
    git(&["branch", "stable"]);
    let commit = git(&["rev-parse", "HEAD"]);
    let daemon = tektite_tests::GitDaemon::start(base.path());
    let url = daemon.url("catalog");
    let sources = Sources::default();
    let h = harness(vec![], vec![], vec![], at("2026-12-03T10:00:00Z"));
    let fetch = |pairs: Vec<(&'static str, String)>| {
        let (client, sources) = (h.ctx.client.clone(), &sources);
        async move { ask(&client, sources, "git", &pairs, Kind::Task).await }
    };
    let path = ("pathInRepo", "task/lint/lint.yaml".to_owned());
    for revision in ["main", "stable", "v0.1", commit.as_str()] {
        let r = fetch(vec![
            ("url", url.clone()),
            ("revision", revision.into()),
            path.clone(),
        ])
        .await
        .unwrap_or_else(|e| panic!("{revision}: {e}"));
        assert_eq!(r.name, "lint");
        assert_eq!(r.spec["steps"][0]["script"], "echo lint");
        assert_eq!(r.source.uri, Some(format!("git+{url}")));
        assert_eq!(r.source.digest["sha1"], commit);
        assert_eq!(r.source.entry_point.as_deref(), Some("task/lint/lint.yaml"));
    }
    // The default revision is main.
    assert!(
        fetch(vec![("url", url.clone()), path.clone()])
            .await
            .is_ok()
    );

    let why =
        |r: Result<tektite_controller::resolve::Resolved, Unresolved>| r.unwrap_err().to_string();
    let outside = why(fetch(vec![
        ("url", url.clone()),
        ("pathInRepo", "../etc/passwd".into()),
    ])
    .await);
    assert!(outside.contains("outside the repository"), "{outside}");
    let no_file = why(fetch(vec![
        ("url", url.clone()),
        ("pathInRepo", "task/none.yaml".into()),
    ])
    .await);
    assert!(
        no_file.contains(&commit) && no_file.contains("no file \"task/none.yaml\""),
        "{no_file}"
    );
    let no_rev = why(fetch(vec![
        ("url", url.clone()),
        ("revision", "v9".into()),
        path.clone(),
    ])
    .await);
    assert!(no_rev.contains("no revision \"v9\""), "{no_rev}");
    let wrong_kind = why(fetch(vec![
        ("url", url.clone()),
        ("pathInRepo", "README.md".into()),
    ])
    .await);
    assert!(wrong_kind.contains("exactly one Task"), "{wrong_kind}");
    let scheme = why(fetch(vec![
        ("url", format!("file://{}", repo.display())),
        path.clone(),
    ])
    .await);
    assert!(scheme.contains("http, https and git URLs"), "{scheme}");
    let api = why(fetch(vec![
        ("org", "tektoncd".into()),
        ("repo", "catalog".into()),
        path.clone(),
    ])
    .await);
    assert!(api.contains("API mode"), "{api}");

    // A file at a commit is read again without the server.
    drop(daemon);
    let again = fetch(vec![
        ("url", url.clone()),
        ("revision", commit.clone()),
        path.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(again.source.digest["sha1"], commit);
    let gone = why(fetch(vec![
        ("url", url.clone()),
        ("revision", "main".into()),
        path.clone(),
    ])
    .await);
    assert!(gone.contains("cloning"), "{gone}");
    h.finish().await;
}

/// The hub resolver against a stand-in answering as Artifact Hub's and Tekton Hub's APIs
/// answer: the highest listed version that meets the version or constraint (prereleases
/// left out), versions mapped to each hub's form (x.y.0, x.y), recorded with the URL and
/// sha256; and what cannot be had, said with why.
#[tokio::test]
async fn the_hub_resolver_picks_a_version_from_artifact_hub_and_tekton_hub() {
    let addr = server().await;
    let hub_sources = Sources::default();
    let h = harness(vec![], vec![], vec![], at("2026-12-03T10:00:00Z"));
    let base = format!("http://{addr}");
    let fetch = |pairs: Vec<(&'static str, String)>| {
        let (client, sources) = (h.ctx.client.clone(), &hub_sources);
        async move { ask(&client, sources, "hub", &pairs, Kind::Task).await }
    };
    let artifact = |version: &str| {
        vec![
            ("url", base.clone()),
            ("name", "lint".to_owned()),
            ("version", version.to_owned()),
        ]
    };
    // An exact version, in either form; a constraint takes the highest that is not a prerelease.
    for (version, script) in [
        ("0.6", "echo lint"),
        ("0.5.0", "echo lint 0.5"),
        (">= 0.5", "echo lint"),
        ("< 0.6", "echo lint 0.5"),
    ] {
        let r = fetch(artifact(version))
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(r.spec["steps"][0]["script"], script, "{version}");
        assert_eq!(r.name, "lint");
        assert!(r.source.uri.as_deref().unwrap().starts_with(&format!(
            "{base}/api/v1/packages/tekton-task/tekton-catalog-tasks/lint/0."
        )));
        assert_eq!(r.source.digest["sha256"].len(), 64);
    }
    let tekton = fetch(vec![
        ("url", base.clone()),
        ("type", "tekton".into()),
        ("name", "lint".into()),
        ("version", "0.6.0".into()),
    ])
    .await
    .unwrap();
    assert_eq!(
        tekton.source.uri,
        Some(format!("{base}/v1/resource/Tekton/task/lint/0.6/yaml"))
    );

    let why =
        |r: Result<tektite_controller::resolve::Resolved, Unresolved>| r.unwrap_err().to_string();
    let none = why(fetch(artifact(">= 1.0")).await);
    assert!(
        none.contains("lists no version of \"lint\" that is \">= 1.0\""),
        "{none}"
    );
    let missing = why(fetch(vec![
        ("url", base.clone()),
        ("name", "nope".into()),
        ("version", "0.6".into()),
    ])
    .await);
    assert!(missing.contains("404"), "{missing}");
    let bad = why(fetch(artifact("soon")).await);
    assert!(bad.contains("neither a version nor a constraint"), "{bad}");
    let no_url = why(fetch(vec![
        ("type", "tekton".into()),
        ("name", "lint".into()),
        ("version", "0.6".into()),
    ])
    .await);
    assert!(no_url.contains("needs the param \"url\""), "{no_url}");
    let kind = why(fetch(vec![
        ("url", base.clone()),
        ("kind", "pipeline".into()),
        ("name", "lint".into()),
        ("version", "0.6".into()),
    ])
    .await);
    assert!(
        kind.contains("asked for a pipeline where a task is referenced"),
        "{kind}"
    );
    h.finish().await;
}

/// The hub resolver's ConfigMap (Tekton's hubresolver-config keys): its hubs tried in
/// order until one answers, its default catalogs; a value it cannot use is refused.
#[tokio::test]
async fn the_hub_resolvers_configmap_names_its_hubs_and_catalogs() {
    use tektite_controller::resolve::HubConfig;
    let addr = server().await;
    let data = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let hub = HubConfig::from_config(&data(&[
        // Nothing listens on port 1: the next hub answers.
        (
            "artifact-hub-urls",
            &format!("- http://127.0.0.1:1\n- http://{addr}\n"),
        ),
        ("default-artifact-hub-task-catalog", "tekton-catalog-tasks"),
    ]))
    .unwrap();
    let settings = Settings {
        hub,
        ..Settings::default()
    };
    let h = harness(vec![], vec![], vec![], at("2026-12-03T10:00:00Z"));
    let p = params(&[("name", "lint"), ("version", "0.6")]);
    let r = resolve(
        &h.ctx.client,
        &settings,
        &Sources::default(),
        "ci",
        None,
        "hub",
        &p,
        Kind::Task,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        r.source.uri,
        Some(format!(
            "http://{addr}/api/v1/packages/tekton-task/tekton-catalog-tasks/lint/0.6.0"
        ))
    );
    for bad in [
        data(&[("default-type", "gitlab")]),
        data(&[("artifact-hub-urls", "- ftp://hub")]),
        data(&[("tekton-hub-urls", "{not: a list}")]),
    ] {
        assert!(HubConfig::from_config(&bad).is_err(), "{bad:?}");
    }
    h.finish().await;
}
