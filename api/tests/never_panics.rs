//! Parse + validate never panics: on arbitrary bytes, arbitrary YAML trees, and
//! mutations of real documents.

use proptest::prelude::*;
use serde_json::{Map, Value};
use tektite_api::validate::validate;
use tektite_api::{Source, load};

fn check(text: &str) {
    let mut docs = load(&[Source {
        name: "fuzz.yaml",
        text,
    }]);
    validate(&mut docs);
}

/// Keys and values Tekton documents use, so random trees reach deep into validation.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "generateName",
    "spec",
    "steps",
    "tasks",
    "finally",
    "params",
    "value",
    "default",
    "type",
    "results",
    "workspaces",
    "workspace",
    "taskRef",
    "taskSpec",
    "pipelineRef",
    "pipelineSpec",
    "runAfter",
    "when",
    "input",
    "operator",
    "values",
    "cel",
    "matrix",
    "include",
    "image",
    "script",
    "command",
    "args",
    "timeout",
    "timeouts",
    "pipeline",
    "retries",
    "properties",
    "enum",
    "resources",
    "inputs",
    "outputs",
    "resource",
    "from",
    "resourceRef",
    "resourceSpec",
    "emptyDir",
    "status",
    "serviceAccountName",
    "serviceAccount",
    "trigger",
    "stepTemplate",
    "sidecars",
    "onError",
];
const STRINGS: &[&str] = &[
    "tekton.dev/v1",
    "tekton.dev/v1beta1",
    "tekton.dev/v1alpha1",
    "v1",
    "Task",
    "TaskRun",
    "Pipeline",
    "PipelineRun",
    "PipelineResource",
    "git",
    "image",
    "storage",
    "a",
    "b",
    "string",
    "array",
    "object",
    "in",
    "notin",
    "$(params.a)",
    "$(params.a[*])",
    "$(tasks.a.results.r)",
    "$(tasks.b.status)",
    "$(results.r.path)",
    "$(workspaces.w.path)",
    "$(context.taskRun.name)",
    "$(",
    "$(params[\"x",
    "${inputs.params.a}",
    "$(resources.inputs.a.path)",
    "1h",
    "-1s",
    "",
    "continue",
];

fn tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        proptest::sample::select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |kvs| Value::Object(
                    kvs.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>()
                )
            ),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    (proptest::sample::select(&STRINGS[..3]), proptest::sample::select(&STRINGS[4..9]), tree()).prop_map(|(v, k, spec)| {
        serde_json::json!({"apiVersion": v, "kind": k, "metadata": {"name": "a"}, "spec": spec})
    })
}

const SEED_PIPELINE: &str = include_str!("fixtures/seeds/004-v1beta1-test-pipeline-results.yaml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(doc in document()) {
        // JSON is YAML; the tree goes through the same path as any document.
        check(&serde_json::to_string(&doc).unwrap());
    }

    #[test]
    fn arbitrary_cel_expressions_never_panic(cel in "[ -~]{0,40}|\\PC{0,20}") {
        let doc = serde_json::json!({"apiVersion": "tekton.dev/v1", "kind": "Pipeline", "metadata": {"name": "p"},
            "spec": {"tasks": [{"name": "a", "taskRef": {"name": "t"}, "when": [{"cel": cel}]}]}});
        check(&serde_json::to_string(&doc).unwrap());
    }

    #[test]
    fn mutated_real_documents_never_panic(at in 0usize..SEED_PIPELINE.len(), cut in 0usize..64, insert in "[ :\\-\\[\\]{}$()#'\"\n a-z]{0,8}") {
        let mut text = SEED_PIPELINE.as_bytes().to_vec();
        let end = (at + cut).min(text.len());
        text.splice(at..end, insert.bytes());
        check(&String::from_utf8_lossy(&text));
    }
}
