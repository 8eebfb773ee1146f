//! The committed CRDs match the types, and are schemas a Kubernetes API server accepts.

use std::path::Path;

use serde_json::Value;
use tektite_api::crd;

fn committed(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/crds")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo run -p tektite-api --bin crdgen`",
            path.display()
        )
    })
}

#[test]
fn committed_crds_match_the_types() {
    let mut stale = Vec::new();
    for c in crd::all() {
        if committed(&c.file_name) != c.yaml {
            stale.push(c.file_name);
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/crds/ is stale for {stale:?}: run `cargo run -p tektite-api --bin crdgen` and commit the result"
    );
    let on_disk = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds"))
        .unwrap()
        .count();
    assert_eq!(
        on_disk,
        crd::all().len(),
        "deploy/crds/ holds files crdgen does not write"
    );
}

/// Checks the rules of a structural schema: every node has a type (unless it preserves
/// unknown fields or is int-or-string), and there is no $ref, anyOf, oneOf or allOf.
fn structural(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    for forbidden in ["$ref", "anyOf", "oneOf", "allOf", "not"] {
        if map.contains_key(forbidden) {
            problems.push(format!("{path}: has {forbidden}"));
        }
    }
    let exempt = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !exempt && !map.get("type").is_some_and(Value::is_string) {
        problems.push(format!("{path}: has no single type"));
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (k, v) in props {
            structural(v, &format!("{path}.{k}"), problems);
        }
    }
    if let Some(items) = map.get("items") {
        structural(items, &format!("{path}[]"), problems);
    }
    if let Some(additional @ Value::Object(_)) = map.get("additionalProperties") {
        structural(additional, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn crd_schemas_are_structural_and_fit_in_etcd() {
    for c in crd::all() {
        let doc: Value = serde_saphyr::from_str(&c.yaml).expect("CRD YAML parses");
        let version = &doc["spec"]["versions"][0];
        let schema = &version["schema"]["openAPIV3Schema"];
        assert_eq!(
            schema["properties"]["metadata"],
            serde_json::json!({"type": "object"}),
            "{}",
            c.file_name
        );
        let mut problems = Vec::new();
        structural(schema, "", &mut problems);
        assert!(problems.is_empty(), "{}: {problems:#?}", c.file_name);
        let json_size = serde_json::to_string(&doc).unwrap().len();
        assert!(
            json_size < 1_000_000,
            "{} is {json_size} bytes as JSON; etcd refuses objects over ~1.5 MiB",
            c.file_name
        );
        assert_eq!(
            version["subresources"],
            serde_json::json!({"status": {}}),
            "{}",
            c.file_name
        );
    }
}

#[test]
fn runs_print_tekton_columns_and_answer_to_tekton_short_names() {
    let taskruns = crd::all()
        .into_iter()
        .find(|c| c.file_name == "taskruns.tekton.dev.yaml")
        .unwrap();
    let doc: Value = serde_saphyr::from_str(&taskruns.yaml).unwrap();
    assert_eq!(
        doc["spec"]["names"]["shortNames"],
        serde_json::json!(["tr", "trs"])
    );
    let columns: Vec<&str> = doc["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Succeeded", "Reason", "StartTime", "CompletionTime"]
    );
}
