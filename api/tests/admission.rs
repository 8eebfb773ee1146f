//! Every Task, TaskRun, Pipeline, PipelineRun and CustomRun under `examples/`, in Tekton's
//! own example suite (`../shared/tekton-examples/v1`) and among the seed fixtures, sent to
//! an API server that holds the generated CRDs: nothing may be pruned and nothing refused.
//! Documents of older API versions are sent as their v1 conversion (what a user applies
//! once they are converted); documents tektite cannot convert are the conformance tests'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tektite_api::{Object, Source, crd, load};
use tektite_tests::structural::admit;

/// Documents a generated CRD still cannot hold, each with why. A document that is
/// admitted cleanly must leave this list.
const KNOWN: &[(&str, &str)] = &[(
    "shared/tekton-examples/v1/pipelineruns/beta/isolated-workspaces.yaml",
    "workspaces[].mountpath: Go's JSON decoding matches field names regardless of case; a structural schema cannot (the API server prunes it; tkt validate notes it)",
)];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (Tekton's example suite lives in ../shared beside the repository)",
            dir.display()
        )
    });
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every file to send, named relative to the directory above the repository.
fn corpus() -> Vec<(String, PathBuf)> {
    let root = workspace();
    let mut files = Vec::new();
    for dir in [
        root.join("examples"),
        root.join("../shared/tekton-examples/v1"),
        root.join("api/tests/fixtures/seeds"),
    ] {
        yaml_files(&dir, &mut files);
    }
    files.sort();
    let base = root.join("..").canonicalize().unwrap();
    files
        .into_iter()
        .map(|f| {
            let f = f.canonicalize().unwrap();
            let name = f.strip_prefix(&base).unwrap_or(&f).display().to_string();
            (name, f)
        })
        .collect()
}

/// Every served version's schema, by `tekton.dev/<version>/<kind>`.
fn schemas() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for c in crd::all() {
        let doc: Value = serde_saphyr::from_str(&c.yaml).expect("CRD YAML parses");
        let kind = doc["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        for version in doc["spec"]["versions"].as_array().unwrap() {
            let key = format!("tekton.dev/{}/{kind}", version["name"].as_str().unwrap());
            out.insert(key, version["schema"]["openAPIV3Schema"].clone());
        }
    }
    out
}

/// What a user sends for a document: itself when the CRD serves its version, else its v1
/// conversion (`None` when tektite cannot convert it, or it is not a served kind).
fn as_sent(doc: &Value, schemas: &BTreeMap<String, Value>) -> Option<(String, Value)> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    let kind = doc.get("kind")?.as_str()?;
    let key = format!("{api_version}/{kind}");
    if schemas.contains_key(&key) {
        return Some((key, doc.clone()));
    }
    if !api_version.starts_with("tekton.dev/") {
        return None;
    }
    let text = doc.to_string();
    let docs = load(&[Source {
        name: "doc",
        text: &text,
    }]);
    let converted = match docs.into_iter().next()?.object? {
        Object::Task(t) => serde_json::to_value(t),
        Object::TaskRun(t) => serde_json::to_value(t),
        Object::Pipeline(p) => serde_json::to_value(p),
        Object::PipelineRun(p) => serde_json::to_value(p),
        _ => return None,
    }
    .ok()?;
    let key = format!("tekton.dev/v1/{kind}");
    schemas.contains_key(&key).then_some((key, converted))
}

#[test]
fn every_document_is_admitted_whole_by_the_generated_crds() {
    let schemas = schemas();
    let known: BTreeMap<&str, &str> = KNOWN.iter().copied().collect();
    let mut sent = 0;
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for (name, path) in corpus() {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
        let mut problems = Vec::new();
        for doc in docs.iter().filter(|d| d.is_object()) {
            let Some((key, object)) = as_sent(doc, &schemas) else {
                continue;
            };
            sent += 1;
            let admitted = admit(&schemas[&key], &object);
            let what = format!(
                "{key} {}",
                object["metadata"]["name"]
                    .as_str()
                    .or(object["metadata"]["generateName"].as_str())
                    .unwrap_or("?")
            );
            problems.extend(
                admitted
                    .refused
                    .iter()
                    .map(|r| format!("{what}: refused: {r}")),
            );
            problems.extend(admitted.pruned.iter().map(|p| format!("{what}: {p}")));
        }
        match (problems.is_empty(), known.get(name.as_str())) {
            (true, Some(_)) => fixed.push(name),
            (false, None) => unexpected.push(format!("{name}:\n    {}", problems.join("\n    "))),
            _ => {}
        }
    }
    println!("{sent} documents sent to the generated CRDs");
    assert!(sent > 150, "only {sent} documents were sent");
    assert!(
        unexpected.is_empty(),
        "{} files would lose fields or be refused on a real API server:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "now admitted whole: remove from KNOWN: {fixed:?}"
    );
}
