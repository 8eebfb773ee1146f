//! Documents: YAML text in, typed tekton.dev/v1 objects (or problems with paths) out.
//!
//! Each document goes through the same stages: YAML → tree; older API versions
//! converted to v1 on the tree; every field checked against the v1 schema (unknown
//! fields are errors, as in Tekton's webhook); typed decoding with the path of any
//! type error. No stage panics on any input.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1 as core;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::convert::resources::{self, BindingShape, PipelineResource};
use crate::convert::{self, Findings, v1alpha1, v1beta1};
use crate::problem::{FieldPath, Problem};
use crate::{schema, strict, v1};

/// The kinds tektite reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Task,
    TaskRun,
    Pipeline,
    PipelineRun,
    ConfigMap,
    Secret,
    ServiceAccount,
    PipelineResource,
    /// tekton.dev/v1beta1 (or v1alpha1): kept at v1beta1.
    StepAction,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Task => "Task",
            Kind::TaskRun => "TaskRun",
            Kind::Pipeline => "Pipeline",
            Kind::PipelineRun => "PipelineRun",
            Kind::ConfigMap => "ConfigMap",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Secret => "Secret",
            Kind::PipelineResource => "PipelineResource",
            Kind::StepAction => "StepAction",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded object, in its v1 form.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Task(Box<v1::Task>),
    TaskRun(Box<v1::TaskRun>),
    Pipeline(Box<v1::Pipeline>),
    PipelineRun(Box<v1::PipelineRun>),
    ConfigMap(Box<core::ConfigMap>),
    Secret(Box<core::Secret>),
    ServiceAccount(Box<core::ServiceAccount>),
    PipelineResource(PipelineResource),
    StepAction(Box<crate::v1beta1::StepAction>),
    /// Another cluster object (a PersistentVolumeClaim, RBAC, ...), passed over as written.
    Other(Box<Value>),
}

/// The API versions of tekton.dev tektite accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1Alpha1,
    V1Beta1,
    V1,
}

/// One named input text (a file).
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// One document of a source, decoded or not.
#[derive(Clone, Debug)]
pub struct Document {
    /// Index of the source it came from.
    pub source: usize,
    /// 1-based line where the document starts in its source.
    pub line: usize,
    /// The kind as written (may be unknown or empty).
    pub kind: String,
    /// `metadata.name`, or `metadata.generateName` followed by `*`, or empty.
    pub name: String,
    /// The apiVersion as written.
    pub api_version: String,
    /// The decoded object; `None` when decoding failed.
    pub object: Option<Object>,
    /// What is wrong with the document. Empty means valid so far.
    pub problems: Vec<Problem>,
    /// What conversion changed or dropped; not errors.
    pub notes: Vec<Problem>,
}

impl Document {
    /// `Kind/name`, as problems are reported.
    pub fn display_name(&self) -> String {
        match (self.kind.is_empty(), self.name.is_empty()) {
            (true, _) => format!("document at line {}", self.line),
            (false, true) => format!("{}/(unnamed, line {})", self.kind, self.line),
            (false, false) => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// Splits YAML text into documents at `---` lines: (1-based first line, text).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_separator = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_separator || is_end {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 1;
            // Keep what follows `---` on its line (a comment or inline content), and keep
            // line numbers absolute by padding with the lines before the document.
            current = "\n".repeat(i);
            if is_separator {
                current.push_str("   ");
                current.push_str(&line[3..]);
            } else {
                current.push('\n');
            }
        } else {
            if current.is_empty() && i > 0 && docs.is_empty() {
                current = "\n".repeat(i);
            }
            current.push_str(line);
        }
    }
    docs.push((start, current));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|(start, d)| {
            let first = d
                .lines()
                .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .unwrap_or(0);
            (start.max(first + 1), d)
        })
        .collect()
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options
}

/// Loads every document of every source. PipelineResource documents are read first so
/// that runs in any source can bind them.
pub fn load(sources: &[Source<'_>]) -> Vec<Document> {
    let mut parsed = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        for (line, text) in split_documents(source.text) {
            let mut doc = Document {
                source: s,
                line,
                kind: String::new(),
                name: String::new(),
                api_version: String::new(),
                object: None,
                problems: Vec::new(),
                notes: Vec::new(),
            };
            match parse(&text) {
                Ok(Value::Null) => {}
                Ok(Value::Object(mut list))
                    if list
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| k.ends_with("List"))
                        && list.get("items").is_some_and(Value::is_array) =>
                {
                    // `kubectl get -o yaml|json` output: one document per item.
                    if let Some(Value::Array(items)) = list.remove("items") {
                        parsed.extend(items.into_iter().map(|item| (doc.clone(), Some(item))));
                    }
                }
                Ok(v) => parsed.push((doc, Some(v))),
                Err(message) => {
                    doc.problems.push(Problem::new(FieldPath::root(), message));
                    parsed.push((doc, None));
                }
            }
        }
    }
    let mut known_resources = BTreeMap::new();
    for (doc, value) in &mut parsed {
        identify(doc, value.as_ref());
        if doc.kind == "PipelineResource"
            && let Some(value) = value.take()
        {
            decode(doc, value, &BTreeMap::new());
            if let Some(Object::PipelineResource(r)) = &doc.object {
                known_resources.insert(r.name.clone(), r.clone());
            }
        }
    }
    parsed
        .into_iter()
        .map(|(mut doc, value)| {
            if let Some(value) = value {
                decode(&mut doc, value, &known_resources);
            }
            doc
        })
        .collect()
}

/// Parses one document. JSON (what the API server and `kubectl get -o json` give) takes
/// a fast path; anything else, or JSON that does not parse as such, is read as YAML.
fn parse(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return Ok(v);
    }
    serde_saphyr::from_str_with_options::<Value>(text, yaml_options())
        .map_err(|e| format!("invalid YAML: {}", one_line(&e.to_string())))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn identify(doc: &mut Document, value: Option<&Value>) {
    let Some(value) = value else { return };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    doc.kind = text(value.get("kind"));
    doc.api_version = text(value.get("apiVersion"));
    let meta = value.get("metadata");
    doc.name = text(meta.and_then(|m| m.get("name")));
    if doc.name.is_empty() {
        let generate = text(meta.and_then(|m| m.get("generateName")));
        if !generate.is_empty() {
            doc.name = format!("{generate}*");
        }
    }
}

fn decode(
    doc: &mut Document,
    mut value: Value,
    known_resources: &BTreeMap<String, PipelineResource>,
) {
    let root = FieldPath::root();
    let Some(obj) = value.as_object_mut() else {
        doc.problems.push(Problem::new(
            root,
            "a document must be a mapping with apiVersion, kind, metadata and spec",
        ));
        return;
    };
    let version = match obj.get("apiVersion").and_then(Value::as_str) {
        Some("tekton.dev/v1") => Some(Version::V1),
        Some("tekton.dev/v1beta1") => Some(Version::V1Beta1),
        Some("tekton.dev/v1alpha1") => Some(Version::V1Alpha1),
        Some("v1") if matches!(doc.kind.as_str(), "ConfigMap" | "Secret" | "ServiceAccount") => {
            None
        }
        Some(other) if !other.starts_with("tekton.dev/") && !doc.kind.is_empty() => {
            // Tekton's files often hold the cluster objects their runs need.
            doc.notes
                .push(Problem::new(root.field("kind"), passed_over(&doc.kind)));
            doc.object = Some(Object::Other(Box::new(value)));
            return;
        }
        Some(other) => {
            doc.problems.push(Problem::new(root.field("apiVersion"), format!("unsupported apiVersion {other:?}; tektite reads tekton.dev/v1, tekton.dev/v1beta1, tekton.dev/v1alpha1, and v1 ConfigMaps and Secrets")));
            return;
        }
        None => {
            doc.problems.push(Problem::new(
                root.field("apiVersion"),
                "apiVersion is required (e.g. tekton.dev/v1)",
            ));
            return;
        }
    };
    let kind_text = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut findings = Findings::default();
    let kind = match (version, kind_text.as_str()) {
        (Some(_), "Task") => Kind::Task,
        (Some(Version::V1Beta1 | Version::V1Alpha1), "ClusterTask") => {
            findings.note(
                &root.field("kind"),
                "ClusterTask was removed upstream; read as a Task",
            );
            Kind::Task
        }
        (Some(_), "TaskRun") => Kind::TaskRun,
        (Some(_), "Pipeline") => Kind::Pipeline,
        (Some(_), "PipelineRun") => Kind::PipelineRun,
        (Some(Version::V1Alpha1), "PipelineResource") => Kind::PipelineResource,
        (Some(Version::V1Beta1 | Version::V1Alpha1), "StepAction") => Kind::StepAction,
        (Some(Version::V1), "StepAction") => {
            doc.problems.push(Problem::new(
                root.field("apiVersion"),
                "Tekton serves StepAction at tekton.dev/v1beta1 (and v1alpha1), not v1: write apiVersion: tekton.dev/v1beta1",
            ));
            return;
        }
        (None, "ConfigMap") => Kind::ConfigMap,
        (None, "Secret") => Kind::Secret,
        (None, "ServiceAccount") => Kind::ServiceAccount,
        (_, "") => {
            doc.problems.push(Problem::new(
                root.field("kind"),
                "kind is required (Task, TaskRun, Pipeline or PipelineRun)",
            ));
            return;
        }
        (Some(_), run @ ("Run" | "CustomRun")) => {
            doc.problems.push(Problem::new(
                root.field("kind"),
                format!("a {run} is run by its custom task's own controller, not by tektite; on a cluster write the custom task in a Pipeline (a taskRef or taskSpec with its apiVersion and kind) and tektite creates the CustomRun"),
            ));
            return;
        }
        (_, other) => {
            doc.problems.push(Problem::new(root.field("kind"), format!("kind {other:?} is not supported with apiVersion {:?}; tektite reads Task, TaskRun, Pipeline, PipelineRun, StepAction (and v1alpha1 PipelineResource, v1 ConfigMap and Secret)", doc.api_version)));
            return;
        }
    };

    if kind == Kind::PipelineResource {
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            findings.problem(
                &root.field("metadata").field("name"),
                "a PipelineResource needs a name",
            );
        }
        match obj.get("spec") {
            Some(Value::Object(spec)) => {
                if let Some(r) =
                    resources::resource_spec(&name, spec, &root.field("spec"), &mut findings)
                {
                    doc.object = Some(Object::PipelineResource(r));
                }
            }
            _ => findings.problem(
                &root.field("spec"),
                "a PipelineResource needs a spec with a type and params",
            ),
        }
        finish(doc, findings);
        return;
    }

    if kind == Kind::StepAction {
        // The same spec at both versions; kept at the one Tekton stores.
        obj.insert(
            "apiVersion".into(),
            Value::String(crate::v1beta1::API_VERSION.into()),
        );
    } else if let Some(version) = version {
        to_v1(obj, kind, version, known_resources, &mut findings);
    }
    let schema = schema::for_kind(kind);
    strict::fold_case(&mut value, schema, &root, &mut findings.notes);
    let mut unknown = Vec::new();
    strict::unknown_fields(&value, schema, &root, &mut unknown);
    findings.problems.extend(unknown);
    doc.object = match kind {
        Kind::Task => typed(value, &mut findings).map(|t| Object::Task(Box::new(t))),
        Kind::TaskRun => typed(value, &mut findings).map(|t| Object::TaskRun(Box::new(t))),
        Kind::Pipeline => typed(value, &mut findings).map(|t| Object::Pipeline(Box::new(t))),
        Kind::PipelineRun => typed(value, &mut findings).map(|t| Object::PipelineRun(Box::new(t))),
        Kind::ConfigMap => typed(value, &mut findings).map(|t| Object::ConfigMap(Box::new(t))),
        Kind::Secret => typed(value, &mut findings).map(|t| Object::Secret(Box::new(t))),
        Kind::ServiceAccount => {
            typed(value, &mut findings).map(|t| Object::ServiceAccount(Box::new(t)))
        }
        Kind::StepAction => typed(value, &mut findings).map(|t| Object::StepAction(Box::new(t))),
        Kind::PipelineResource => None,
    };
    finish(doc, findings);
}

/// The note on a Kubernetes object that is not Tekton's: what it means to tektite.
fn passed_over(kind: &str) -> String {
    match kind {
        "PersistentVolumeClaim" => {
            "a claim a workspace names is a directory of the run under tkt run; on a cluster, create it with kubectl"
        }
        _ => "not a Tekton document: tektite passes it over; on a cluster, create it with kubectl",
    }
    .to_string()
}

fn finish(doc: &mut Document, findings: Findings) {
    doc.problems.extend(findings.problems);
    doc.notes.extend(findings.notes);
}

/// Converts a tekton.dev document of an older version to v1, in place.
fn to_v1(
    obj: &mut Map<String, Value>,
    kind: Kind,
    version: Version,
    known: &BTreeMap<String, PipelineResource>,
    f: &mut Findings,
) {
    obj.insert("apiVersion".into(), Value::String(v1::API_VERSION.into()));
    obj.insert("kind".into(), Value::String(kind.as_str().into()));
    if version == Version::V1 {
        return;
    }
    let spec_path = FieldPath::root().field("spec");
    if let Some(spec) = obj.get_mut("spec") {
        v1alpha1::rewrite_old_variables(spec);
    }
    if let Some(spec) = convert::object_mut(obj, "spec") {
        let p = &spec_path;
        if version == Version::V1Alpha1 {
            match kind {
                Kind::Task => v1alpha1::task_spec(spec, p, f),
                Kind::TaskRun => v1alpha1::taskrun_spec(spec, p, f),
                Kind::Pipeline => v1alpha1::pipeline_spec(spec, p, f),
                Kind::PipelineRun => v1alpha1::pipelinerun_spec(spec, p, f),
                _ => {}
            }
        }
        match kind {
            Kind::Task => {
                v1beta1::task_spec(spec, p, f);
                resources::task_spec(spec, p, f);
            }
            Kind::TaskRun => {
                v1beta1::taskrun_spec(spec, p, f);
                if let Some(ts) = convert::object_mut(spec, "taskSpec") {
                    resources::task_spec(ts, &p.field("taskSpec"), f);
                }
                resources::run_spec(spec, p, BindingShape::InputsOutputs, known, f);
            }
            Kind::Pipeline => pipeline(spec, p, f),
            Kind::PipelineRun => {
                v1beta1::pipelinerun_spec(spec, p, f);
                if let Some(ps) = convert::object_mut(spec, "pipelineSpec") {
                    pipeline(ps, &p.field("pipelineSpec"), f);
                }
                resources::run_spec(spec, p, BindingShape::List, known, f);
            }
            _ => {}
        }
    }
    if let Some(status) = convert::object_mut(obj, "status") {
        let p = FieldPath::root().field("status");
        match kind {
            Kind::TaskRun => v1beta1::taskrun_status(status, &p, f),
            Kind::PipelineRun => v1beta1::pipelinerun_status(status, &p, f),
            _ => {}
        }
    }
}

fn pipeline(spec: &mut Map<String, Value>, p: &FieldPath, f: &mut Findings) {
    v1beta1::pipeline_spec(spec, p, f);
    for list in ["tasks", "finally"] {
        convert::each_object(spec, list, p, |task, tp| {
            if let Some(ts) = convert::object_mut(task, "taskSpec") {
                resources::task_spec(ts, &tp.field("taskSpec"), f);
            }
        });
    }
    resources::pipeline_spec(spec, p, f);
}

fn typed<T: DeserializeOwned>(value: Value, f: &mut Findings) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." {
                FieldPath::root()
            } else {
                FieldPath::from(path.as_str())
            };
            f.problems
                .push(Problem::new(path, e.into_inner().to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_one(text: &str) -> Document {
        let mut docs = load(&[Source {
            name: "t.yaml",
            text,
        }]);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0)
    }

    #[test]
    fn documents_split_at_separator_lines_and_keep_their_line_numbers() {
        let docs = split_documents("a: 1\n---\n# only a comment\n---\nb: 2\n...\n--- # c\nd: 3\n");
        let starts: Vec<_> = docs.iter().map(|(l, _)| *l).collect();
        assert_eq!(starts, [1, 5, 8]);
        assert_eq!(docs[1].1.lines().nth(4), Some("b: 2"));
    }

    #[test]
    fn a_v1_task_decodes() {
        let d = load_one(
            "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: t}\nspec:\n  steps:\n  - name: s\n    image: alpine\n    script: echo hi\n",
        );
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let Some(Object::Task(t)) = &d.object else {
            panic!("not a task")
        };
        assert_eq!(t.spec.steps[0].script.as_deref(), Some("echo hi"));
        assert_eq!(d.display_name(), "Task/t");
    }

    #[test]
    fn unknown_fields_and_type_errors_are_reported_with_paths() {
        let d = load_one(
            "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: t}\nspec:\n  stepz: []\n  steps:\n  - name: s\n    image: [1]\n",
        );
        let got: Vec<_> = d
            .problems
            .iter()
            .map(|p| p.path.as_str().to_owned())
            .collect();
        assert_eq!(got, ["spec.stepz", "spec.steps[0].image"]);
    }

    #[test]
    fn invalid_yaml_is_a_problem_with_a_line_number() {
        let d = load_one("apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: [unclosed\n");
        assert!(
            d.problems[0].message.starts_with("invalid YAML"),
            "{:?}",
            d.problems
        );
        assert!(d.problems[0].message.contains("line"), "{:?}", d.problems);
    }

    #[test]
    fn json_documents_and_lists_load_like_yaml() {
        let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "tekton.dev/v1", "kind": "Task", "metadata": {"name": "a"}, "spec": {"steps": [{"name": "s", "image": "alpine"}]}},
            {"apiVersion": "tekton.dev/v1", "kind": "Task", "metadata": {"name": "b"}, "spec": {"steps": [{"name": "s", "image": "alpine"}]}}]}"#;
        let docs = load(&[Source {
            name: "l.json",
            text: json,
        }]);
        let names: Vec<_> = docs.iter().map(|d| d.display_name()).collect();
        assert_eq!(names, ["Task/a", "Task/b"]);
        assert!(docs.iter().all(|d| d.problems.is_empty()));
    }

    #[test]
    fn kubernetes_objects_beside_tektons_are_passed_over_with_a_note() {
        for (text, says) in [
            (
                "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {}\n",
                "directory of the run",
            ),
            (
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n",
                "passes it over",
            ),
        ] {
            let d = load_one(text);
            assert!(d.problems.is_empty(), "{text}: {:?}", d.problems);
            // Kept as written, for `tkt convert` to pass on.
            let Some(Object::Other(v)) = &d.object else {
                panic!("{text}: {:?}", d.object)
            };
            assert_eq!(v["metadata"]["name"].as_str().map(str::len), Some(1));
            assert_eq!(d.notes.len(), 1, "{text}");
            assert!(d.notes[0].to_string().contains(says), "{}", d.notes[0]);
        }
        // A ServiceAccount is read: its Secrets are a local run's credentials.
        let d = load_one(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\nsecrets: [{name: key}]\n",
        );
        assert!(d.problems.is_empty() && d.notes.is_empty(), "{d:?}");
        assert!(matches!(d.object, Some(Object::ServiceAccount(_))));
        // A document of no kind, or of a Tekton version tektite does not know, is refused.
        for text in [
            "apiVersion: apps/v1\nmetadata: {name: d}\n",
            "apiVersion: tekton.dev/v2\nkind: Task\nmetadata: {name: t}\n",
        ] {
            assert!(!load_one(text).problems.is_empty(), "{text}");
        }
    }

    #[test]
    fn generate_name_names_a_run() {
        let d = load_one(
            "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {generateName: hello-}\nspec: {taskRef: {name: t}}\n",
        );
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert_eq!(d.display_name(), "TaskRun/hello-*");
    }
}
