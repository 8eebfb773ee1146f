//! `$(...)` variables: the one parser for every reference Tekton defines, and
//! substitution driven by a lookup the caller provides.
//!
//! Text inside `$(` `)` is a Tekton variable when it starts with one of Tekton's roots
//! (`params`, `tasks`, `results`, `steps`, `step`, `workspaces`, `context`,
//! `resources`); anything else, like a shell command substitution `$(date +%s)`,
//! is plain text. A variable with a known root but a shape Tekton does not define is
//! [`Reference::Malformed`], which validation reports.

use std::fmt;

/// What part of a param or result a reference selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `$(params.p)`: the whole value.
    Whole,
    /// `$(params.p[*])`: every element of an array (or the whole object).
    Star,
    /// `$(params.p[2])`: one element of an array.
    Index(usize),
    /// `$(params.p.key)`: one key of an object.
    Key(String),
}

/// An attribute of a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkspaceAttr {
    Path,
    Bound,
    Claim,
    Volume,
}

/// A parsed Tekton variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `$(params.<p>)`, `$(params["<p>"])`, with a selector.
    Param { name: String, selector: Selector },
    /// `$(tasks.<t>.results.<r>)` (or, for a finally task in pipeline results,
    /// `$(finally.<t>.results.<r>)`), with a selector.
    TaskResult {
        task: String,
        result: String,
        selector: Selector,
    },
    /// `$(tasks.<t>.status)`: the status of one task (finally tasks only).
    TaskStatus { task: String },
    /// `$(tasks.<t>.reason)`: the reason of one task (finally tasks only).
    TaskReason { task: String },
    /// `$(tasks.status)`: the aggregate status of the tasks (finally tasks only).
    TasksStatus,
    /// `$(tasks.<t>.matrix.length)`: how many TaskRuns a matrixed task fanned out into;
    /// `$(tasks.<t>.matrix.<r>.length)`: how many of them wrote result `r`.
    MatrixLength {
        task: String,
        result: Option<String>,
    },
    /// `$(results.<r>.path)`: where a step writes a task result.
    ResultPath { name: String },
    /// `$(credentials.path)`: where the ServiceAccount's credentials are written.
    CredentialsPath,
    /// `$(steps.step-<s>.exitCode.path)` (also `$(steps.<s>.exitCode.path)`).
    StepExitCodePath { step: String },
    /// `$(steps.<s>.results.<r>)`: a result of an earlier step.
    StepResult {
        step: String,
        result: String,
        selector: Selector,
    },
    /// `$(step.results.<r>.path)`: where the current step writes one of its results.
    OwnStepResultPath { name: String },
    /// `$(step.artifacts.path)`: where the current step writes its artifacts (alpha).
    OwnStepArtifactsPath,
    /// `$(artifacts.path)`: where any step writes the Task's artifacts (alpha).
    ArtifactsPath,
    /// `$(steps.<s>.inputs|outputs[.<name>])`: an earlier step's artifact values, as JSON
    /// (no name: its first).
    StepArtifact {
        step: String,
        io: ArtifactIo,
        name: Option<String>,
    },
    /// `$(tasks.<t>.inputs|outputs[.<name>])`: a finished task's artifact values, as JSON.
    TaskArtifact {
        task: String,
        io: ArtifactIo,
        name: Option<String>,
    },
    /// `$(workspaces.<w>.path|bound|claim|volume)`.
    Workspace { name: String, attr: WorkspaceAttr },
    /// `$(context.<object>.<field>)`, e.g. `context.taskRun.name`.
    Context { object: String, field: String },
    /// `$(resources.…)`: a PipelineResource variable left after conversion.
    Resource { path: String },
    /// A Tekton root with a shape Tekton does not define.
    Malformed { reason: String },
}

/// Which of a step's or task's artifacts a reference reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArtifactIo {
    Inputs,
    Outputs,
}

impl ArtifactIo {
    fn of(token: &Token<'_>) -> Option<ArtifactIo> {
        match token {
            Token::Name("inputs") => Some(ArtifactIo::Inputs),
            Token::Name("outputs") => Some(ArtifactIo::Outputs),
            _ => None,
        }
    }
}

/// One `$(...)` occurrence in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence<'a> {
    /// Byte range of the whole `$(...)` in the text.
    pub start: usize,
    pub end: usize,
    /// The whole `$(...)` as written.
    pub raw: &'a str,
    pub reference: Reference,
}

const ROOTS: &[&str] = &[
    "params",
    "tasks",
    "results",
    "steps",
    "step",
    "workspaces",
    "context",
    "resources",
    "inputs",
    "finally",
    "credentials",
    "artifacts",
];

/// A token of the inside of `$(...)`: `.name` or `[...]`.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    Quoted(&'a str),
    Star,
    Index(usize),
}

fn tokenize(inner: &str) -> Option<Vec<Token<'_>>> {
    let bytes = inner.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    while i < bytes.len() {
        match bytes[i] {
            b'.' if !tokens.is_empty() => i += 1,
            b'[' => {
                let close = inner[i..].find(']')? + i;
                let body = inner[i + 1..close].trim();
                let token = if body == "*" {
                    Token::Star
                } else if let Ok(n) = body.parse::<usize>() {
                    Token::Index(n)
                } else if body.len() >= 2
                    && ((body.starts_with('"') && body.ends_with('"'))
                        || (body.starts_with('\'') && body.ends_with('\'')))
                {
                    Token::Quoted(&body[1..body.len() - 1])
                } else {
                    return None;
                };
                tokens.push(token);
                i = close + 1;
                continue;
            }
            _ => {}
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && name_char(bytes[i]) {
            i += 1;
        }
        if i == start {
            return None;
        }
        tokens.push(Token::Name(&inner[start..i]));
    }
    Some(tokens)
}

fn malformed(reason: impl Into<String>) -> Reference {
    Reference::Malformed {
        reason: reason.into(),
    }
}

fn name_of(t: Option<&Token<'_>>) -> Option<String> {
    match t {
        Some(Token::Name(n)) | Some(Token::Quoted(n)) => Some((*n).to_owned()),
        _ => None,
    }
}

fn selector(rest: &[Token<'_>]) -> Result<Selector, String> {
    match rest {
        [] => Ok(Selector::Whole),
        [Token::Star] => Ok(Selector::Star),
        [Token::Index(i)] => Ok(Selector::Index(*i)),
        [Token::Name(k)] | [Token::Quoted(k)] => Ok(Selector::Key((*k).to_owned())),
        _ => Err("expected at most one of [*], [index] or .key after the name".into()),
    }
}

/// `$(<root>.<t>.results.<r><selector>)`, `root` being `tasks` or `finally`.
fn task_result(root: &str, t: &Token<'_>, r: &Token<'_>, sel: &[Token<'_>]) -> Reference {
    match (name_of(Some(t)), name_of(Some(r)), selector(sel)) {
        (Some(task), Some(result), Ok(selector)) => Reference::TaskResult {
            task,
            result,
            selector,
        },
        (_, _, Err(e)) => malformed(e),
        _ => malformed(format!("write $({root}.<task>.results.<result>)")),
    }
}

/// `<owner>.inputs|outputs[.<name>]` of an artifact reference.
fn artifact(
    owner: &Token<'_>,
    io: &Token<'_>,
    name: &[Token<'_>],
) -> Option<(String, ArtifactIo, Option<String>)> {
    let name = match name.first() {
        Some(n) => Some(name_of(Some(n))?),
        None => None,
    };
    Some((name_of(Some(owner))?, ArtifactIo::of(io)?, name))
}

/// Interprets the inside of `$(...)`. `None` means it is not a Tekton variable.
fn interpret(inner: &str) -> Option<Reference> {
    let tokens = tokenize(inner)?;
    let Some(Token::Name(root)) = tokens.first() else {
        return None;
    };
    if !ROOTS.contains(root) {
        return None;
    }
    let rest = &tokens[1..];
    let r = match *root {
        // `$(inputs.params.x)`, the old spelling Tekton still substitutes as `$(params.x)`.
        "inputs" => match rest {
            [Token::Name("params"), name, sel @ ..] => match (name_of(Some(name)), selector(sel)) {
                (Some(name), Ok(selector)) => Reference::Param { name, selector },
                (_, Err(e)) => malformed(e),
                (None, _) => malformed("write $(inputs.params.<name>)"),
            },
            _ => return None,
        },
        "params" => match name_of(rest.first()) {
            Some(name) => match selector(&rest[1..]) {
                Ok(selector) => Reference::Param { name, selector },
                Err(e) => malformed(e),
            },
            None => malformed("write $(params.<name>)"),
        },
        "tasks" => match rest {
            [Token::Name("status")] => Reference::TasksStatus,
            [t, Token::Name("status")] => Reference::TaskStatus {
                task: name_of(Some(t))?,
            },
            [t, Token::Name("reason")] => Reference::TaskReason {
                task: name_of(Some(t))?,
            },
            [t, Token::Name("matrix"), Token::Name("length")] => Reference::MatrixLength {
                task: name_of(Some(t))?,
                result: None,
            },
            [t, Token::Name("matrix"), r, Token::Name("length")] => Reference::MatrixLength {
                task: name_of(Some(t))?,
                result: Some(name_of(Some(r))?),
            },
            [t, Token::Name("results"), r, sel @ ..] => task_result("tasks", t, r, sel),
            [t, io, name @ ..] if ArtifactIo::of(io).is_some() && name.len() <= 1 => {
                let (task, io, name) = artifact(t, io, name)?;
                Reference::TaskArtifact { task, io, name }
            }
            _ => malformed(
                "write $(tasks.<task>.results.<result>), $(tasks.<task>.status), $(tasks.<task>.matrix.length), $(tasks.<task>.outputs.<artifact>) or $(tasks.status)",
            ),
        },
        // `$(finally.<t>.results.<r>)`: a finally task's result, for pipeline results.
        "finally" => match rest {
            [t, Token::Name("results"), r, sel @ ..] => task_result("finally", t, r, sel),
            _ => malformed("write $(finally.<task>.results.<result>)"),
        },
        "credentials" => match rest {
            [Token::Name("path")] => Reference::CredentialsPath,
            _ => malformed("write $(credentials.path)"),
        },
        "results" => match rest {
            [r, Token::Name("path")] => Reference::ResultPath {
                name: name_of(Some(r))?,
            },
            _ => malformed("write $(results.<result>.path)"),
        },
        "step" => match rest {
            [Token::Name("results"), r, Token::Name("path")] => Reference::OwnStepResultPath {
                name: name_of(Some(r))?,
            },
            [Token::Name("artifacts"), Token::Name("path")] => Reference::OwnStepArtifactsPath,
            _ => malformed("write $(step.results.<result>.path) or $(step.artifacts.path)"),
        },
        "artifacts" => match rest {
            [Token::Name("path")] => Reference::ArtifactsPath,
            _ => malformed("write $(artifacts.path)"),
        },
        "steps" => match rest {
            [s, Token::Name("exitCode"), Token::Name("path")] => {
                let step = name_of(Some(s))?;
                Reference::StepExitCodePath {
                    step: step
                        .strip_prefix("step-")
                        .map(str::to_owned)
                        .unwrap_or(step),
                }
            }
            [s, Token::Name("results"), r, sel @ ..] => {
                match (name_of(Some(s)), name_of(Some(r)), selector(sel)) {
                    (Some(step), Some(result), Ok(selector)) => Reference::StepResult {
                        step,
                        result,
                        selector,
                    },
                    (_, _, Err(e)) => malformed(e),
                    _ => malformed("write $(steps.<step>.results.<result>)"),
                }
            }
            [s, io, name @ ..] if ArtifactIo::of(io).is_some() && name.len() <= 1 => {
                let (step, io, name) = artifact(s, io, name)?;
                Reference::StepArtifact { step, io, name }
            }
            _ => malformed(
                "write $(steps.step-<step>.exitCode.path), $(steps.<step>.results.<result>) or $(steps.<step>.outputs.<artifact>)",
            ),
        },
        "workspaces" => match rest {
            [w, Token::Name(attr)] => {
                let attr = match *attr {
                    "path" => WorkspaceAttr::Path,
                    "bound" => WorkspaceAttr::Bound,
                    "claim" => WorkspaceAttr::Claim,
                    "volume" => WorkspaceAttr::Volume,
                    other => {
                        return Some(malformed(format!(
                            "workspaces have path, bound, claim and volume, not {other:?}"
                        )));
                    }
                };
                Reference::Workspace {
                    name: name_of(Some(w))?,
                    attr,
                }
            }
            _ => malformed("write $(workspaces.<workspace>.path|bound|claim|volume)"),
        },
        "context" => match rest {
            [Token::Name(object), Token::Name(field)] => Reference::Context {
                object: (*object).to_owned(),
                field: (*field).to_owned(),
            },
            _ => malformed("write $(context.<object>.<field>), e.g. $(context.taskRun.name)"),
        },
        "resources" => Reference::Resource {
            path: inner.to_owned(),
        },
        _ => return None,
    };
    Some(r)
}

/// Every Tekton variable in `text`, in order.
pub fn references(text: &str) -> Vec<Occurrence<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find("$(") {
        let start = from + pos;
        let Some(close) = text[start + 2..].find(')') else {
            break;
        };
        let end = start + 2 + close + 1;
        match interpret(&text[start + 2..end - 1]) {
            Some(reference) => {
                out.push(Occurrence {
                    start,
                    end,
                    raw: &text[start..end],
                    reference,
                });
                from = end;
            }
            None => from = start + 2,
        }
    }
    out
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Whole => Ok(()),
            Selector::Star => f.write_str("[*]"),
            Selector::Index(i) => write!(f, "[{i}]"),
            Selector::Key(k) => write!(f, ".{k}"),
        }
    }
}

/// What a lookup resolves a reference to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    Text(String),
    Array(Vec<String>),
    /// An object param or result taken whole (`$(params.obj[*])`): only a whole param
    /// value can be one.
    Object(std::collections::BTreeMap<String, String>),
}

/// Why a substitution could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    #[error(
        "{raw} is an array; it can only stand alone as a whole element of a list (args, command, array values)"
    )]
    ArrayInString { raw: String },
    #[error(
        "{raw} is an object; taken whole it can only be the whole value of an object param (use $(….key) for one key)"
    )]
    ObjectOutsideParam { raw: String },
    #[error("{field}: after substitution the value is no longer valid: {message}")]
    Misfit { field: String, message: String },
}

/// Replaces every variable `lookup` resolves; unresolved ones stay as written, so
/// substitution can happen in stages (params first, results when they are known).
pub fn substitute(
    text: &str,
    lookup: &mut dyn FnMut(&Reference) -> Option<Resolved>,
) -> Result<String, SubstituteError> {
    let occurrences = references(text);
    if occurrences.is_empty() {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for o in occurrences {
        out.push_str(&text[last..o.start]);
        match lookup(&o.reference) {
            Some(Resolved::Text(t)) => out.push_str(&t),
            Some(Resolved::Array(_)) => {
                return Err(SubstituteError::ArrayInString {
                    raw: o.raw.to_owned(),
                });
            }
            Some(Resolved::Object(_)) => {
                return Err(SubstituteError::ObjectOutsideParam {
                    raw: o.raw.to_owned(),
                });
            }
            None => out.push_str(o.raw),
        }
        last = o.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Substitutes every string of a JSON tree (a step, a volume: any object serialized),
/// lists of strings as [`substitute_list`] does. An error comes with the path of the
/// field below the tree's root (`volumeMounts[0].mountPath`).
pub fn substitute_tree(
    v: &mut serde_json::Value,
    lookup: &mut dyn FnMut(&Reference) -> Option<Resolved>,
) -> Result<(), (String, SubstituteError)> {
    use serde_json::Value;
    let at = |path: String| move |e| (path, e);
    match v {
        Value::String(s) => *s = substitute(s, lookup).map_err(at(String::new()))?,
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let strings: Vec<String> = items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect();
            *items = substitute_list(&strings, lookup)
                .map_err(at(String::new()))?
                .into_iter()
                .map(Value::String)
                .collect();
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_tree(item, lookup).map_err(|(p, e)| (format!("[{i}]{p}"), e))?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                substitute_tree(item, lookup).map_err(|(p, e)| {
                    let dot = if p.starts_with('[') || p.is_empty() {
                        ""
                    } else {
                        "."
                    };
                    (format!(".{k}{dot}{p}"), e)
                })?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Substitutes each element of a list; an element that is exactly one array reference
/// expands into that many elements (Tekton's `args: ["$(params.flags[*])"]`).
pub fn substitute_list(
    items: &[String],
    lookup: &mut dyn FnMut(&Reference) -> Option<Resolved>,
) -> Result<Vec<String>, SubstituteError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match whole(item, lookup) {
            Some(Resolved::Array(values)) => out.extend(values),
            _ => out.push(substitute(item, lookup)?),
        }
    }
    Ok(out)
}

/// What `text` resolves to when it is exactly one reference to an array or an object.
fn whole(text: &str, lookup: &mut dyn FnMut(&Reference) -> Option<Resolved>) -> Option<Resolved> {
    lookup(&alone(text)?).filter(|r| matches!(r, Resolved::Array(_) | Resolved::Object(_)))
}

/// The reference `text` is, when it is exactly one `$(...)` and nothing else.
pub fn alone(text: &str) -> Option<Reference> {
    match references(text).as_slice() {
        [only] if only.start == 0 && only.end == text.len() => Some(only.reference.clone()),
        _ => None,
    }
}

/// Substitutes a param value: a string that is exactly one array (object) reference
/// becomes that array (object); array elements expand as in [`substitute_list`]; object
/// values are substituted one by one.
pub fn substitute_param_value(
    value: &crate::v1::ParamValue,
    lookup: &mut dyn FnMut(&Reference) -> Option<Resolved>,
) -> Result<crate::v1::ParamValue, SubstituteError> {
    use crate::v1::ParamValue;
    Ok(match value {
        ParamValue::String(s) => match whole(s, lookup) {
            Some(Resolved::Array(values)) => ParamValue::Array(values),
            Some(Resolved::Object(map)) => ParamValue::Object(map),
            _ => ParamValue::String(substitute(s, lookup)?),
        },
        ParamValue::Array(items) => ParamValue::Array(substitute_list(items, lookup)?),
        ParamValue::Object(map) => ParamValue::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, lookup)?)))
                .collect::<Result<_, SubstituteError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_inputs_params_spelling_is_a_param() {
        let refs = references("$(inputs.params.a) $(inputs.params.obj.key) $(inputs.resources.x)");
        let got: Vec<&Reference> = refs.iter().map(|o| &o.reference).collect();
        assert_eq!(
            got,
            [
                &Reference::Param {
                    name: "a".into(),
                    selector: Selector::Whole
                },
                &Reference::Param {
                    name: "obj".into(),
                    selector: Selector::Key("key".into())
                },
            ]
        );
    }

    fn one(text: &str) -> Reference {
        let refs = references(text);
        assert_eq!(refs.len(), 1, "{text}: {refs:?}");
        refs[0].reference.clone()
    }

    fn param(name: &str, selector: Selector) -> Reference {
        Reference::Param {
            name: name.into(),
            selector,
        }
    }

    #[test]
    fn params_parse_with_every_selector() {
        assert_eq!(one("$(params.p)"), param("p", Selector::Whole));
        assert_eq!(one("$(params.p[*])"), param("p", Selector::Star));
        assert_eq!(one("$(params.p[3])"), param("p", Selector::Index(3)));
        assert_eq!(
            one("$(params.p.key)"),
            param("p", Selector::Key("key".into()))
        );
        assert_eq!(
            one("$(params[\"org.repo\"])"),
            param("org.repo", Selector::Whole)
        );
        assert_eq!(one("$(params['a.b'][*])"), param("a.b", Selector::Star));
    }

    #[test]
    fn task_references_parse() {
        assert_eq!(
            one("x $(tasks.build.results.digest) y"),
            Reference::TaskResult {
                task: "build".into(),
                result: "digest".into(),
                selector: Selector::Whole
            }
        );
        assert_eq!(
            one("$(tasks.build.results.urls[1])"),
            Reference::TaskResult {
                task: "build".into(),
                result: "urls".into(),
                selector: Selector::Index(1)
            }
        );
        assert_eq!(
            one("$(tasks.build.status)"),
            Reference::TaskStatus {
                task: "build".into()
            }
        );
        assert_eq!(one("$(tasks.status)"), Reference::TasksStatus);
    }

    #[test]
    fn artifact_references_parse() {
        assert_eq!(one("$(artifacts.path)"), Reference::ArtifactsPath);
        assert_eq!(
            one("$(step.artifacts.path)"),
            Reference::OwnStepArtifactsPath
        );
        assert_eq!(
            one("$(steps.make.outputs.image)"),
            Reference::StepArtifact {
                step: "make".into(),
                io: ArtifactIo::Outputs,
                name: Some("image".into())
            }
        );
        assert_eq!(
            one("$(tasks.build.inputs)"),
            Reference::TaskArtifact {
                task: "build".into(),
                io: ArtifactIo::Inputs,
                name: None
            }
        );
        assert!(matches!(
            one("$(artifacts.dir)"),
            Reference::Malformed { .. }
        ));
        assert!(matches!(
            one("$(steps.make.outputs.a.b)"),
            Reference::Malformed { .. }
        ));
    }

    #[test]
    fn step_workspace_and_context_references_parse() {
        assert_eq!(
            one("$(results.out.path)"),
            Reference::ResultPath { name: "out".into() }
        );
        assert_eq!(
            one("$(steps.step-build.exitCode.path)"),
            Reference::StepExitCodePath {
                step: "build".into()
            }
        );
        assert_eq!(one("$(credentials.path)"), Reference::CredentialsPath);
        assert_eq!(
            one("$(tasks.build.matrix.length)"),
            Reference::MatrixLength {
                task: "build".into(),
                result: None
            }
        );
        assert_eq!(
            one("$(tasks.build.matrix.IMAGE-URL.length)"),
            Reference::MatrixLength {
                task: "build".into(),
                result: Some("IMAGE-URL".into())
            }
        );
        assert_eq!(
            one("$(finally.report.results.url)"),
            Reference::TaskResult {
                task: "report".into(),
                result: "url".into(),
                selector: Selector::Whole
            }
        );
        assert_eq!(
            one("$(steps.build.results.sha)"),
            Reference::StepResult {
                step: "build".into(),
                result: "sha".into(),
                selector: Selector::Whole
            }
        );
        assert_eq!(
            one("$(step.results.sha.path)"),
            Reference::OwnStepResultPath { name: "sha".into() }
        );
        assert_eq!(
            one("$(workspaces.src.bound)"),
            Reference::Workspace {
                name: "src".into(),
                attr: WorkspaceAttr::Bound
            }
        );
        assert_eq!(
            one("$(context.task.retry-count)"),
            Reference::Context {
                object: "task".into(),
                field: "retry-count".into()
            }
        );
    }

    #[test]
    fn shell_command_substitutions_are_plain_text() {
        assert!(references("echo $(date +%s) $(git rev-parse HEAD) $(cat file)").is_empty());
        assert!(references("$(unknown.thing) $( params.x) $(").is_empty());
    }

    #[test]
    fn tekton_roots_with_other_shapes_are_malformed() {
        assert!(matches!(one("$(params)"), Reference::Malformed { .. }));
        assert!(matches!(
            one("$(tasks.a.outputs.b.c)"),
            Reference::Malformed { .. }
        ));
        assert!(matches!(
            one("$(workspaces.w.size)"),
            Reference::Malformed { .. }
        ));
    }

    #[test]
    fn substitution_leaves_unresolved_references_for_a_later_stage() {
        let mut lookup = |r: &Reference| match r {
            Reference::Param { name, .. } if name == "a" => Some(Resolved::Text("A".into())),
            _ => None,
        };
        assert_eq!(
            substitute("$(params.a)-$(params.b)-$(date)", &mut lookup).unwrap(),
            "A-$(params.b)-$(date)"
        );
    }

    #[test]
    fn array_references_expand_only_as_whole_list_elements() {
        let mut lookup = |_: &Reference| Some(Resolved::Array(vec!["x".into(), "y".into()]));
        let items = vec!["first".to_owned(), "$(params.flags[*])".to_owned()];
        assert_eq!(
            substitute_list(&items, &mut lookup).unwrap(),
            ["first", "x", "y"]
        );
        assert!(matches!(
            substitute("--flags=$(params.flags[*])", &mut lookup),
            Err(SubstituteError::ArrayInString { .. })
        ));
    }
}
