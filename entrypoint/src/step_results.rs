//! `$(steps.<step>.results.<result>)` and (alpha) `$(steps.<step>.outputs.<artifact>)` in
//! a step's command, args, env, script and `when`: the pod builder leaves them for the
//! entrypoint, which reads what the earlier steps wrote
//! (`<steps dir>/step-<step>/results/<result>`, `.../artifacts/provenance.json`) just
//! before the command starts, as Tekton's entrypoint does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tektite_api::step::layout::{
    ARTIFACTS_FILE, STEP_ARTIFACTS_DIR, STEP_RESULTS_DIR, step_dir_name,
};
use tektite_api::v1::{Artifacts, WhenExpression};
use tektite_api::vars::{self, Reference, Selector};

/// A step result reference that cannot be replaced.
#[derive(Debug, thiserror::Error)]
pub enum StepResultError {
    #[error("{raw}: step {step:?} wrote no result {result:?} ({path} cannot be read: {source})")]
    Missing {
        raw: String,
        step: String,
        result: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{raw}: {why}")]
    Misfit { raw: String, why: String },
    #[error("{raw}: step {step:?} left no artifacts ({path}: {why})")]
    NoArtifacts {
        raw: String,
        step: String,
        path: PathBuf,
        why: String,
    },
}

/// A step result as written: JSON arrays and objects of strings are arrays and objects,
/// anything else is text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Text(String),
    Array(Vec<String>),
    Object(BTreeMap<String, String>),
}

impl Value {
    fn parse(content: String) -> Value {
        let trimmed = content.trim();
        if trimmed.starts_with('[')
            && let Ok(a) = serde_json::from_str::<Vec<String>>(trimmed)
        {
            return Value::Array(a);
        }
        if trimmed.starts_with('{')
            && let Ok(o) = serde_json::from_str::<BTreeMap<String, String>>(trimmed)
        {
            return Value::Object(o);
        }
        Value::Text(content)
    }
}

/// Reads the results the step's references name, from `steps_dir`.
pub struct Reader<'a> {
    steps_dir: &'a Path,
    read: BTreeMap<(String, String), Value>,
    artifacts: BTreeMap<String, Artifacts>,
}

impl<'a> Reader<'a> {
    pub fn new(steps_dir: &'a Path) -> Self {
        Reader {
            steps_dir,
            read: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        }
    }

    /// `$(steps.<step>.inputs|outputs[.<name>])`: the artifact's values as JSON.
    fn artifact(
        &mut self,
        raw: &str,
        step: &str,
        io: vars::ArtifactIo,
        name: Option<&str>,
    ) -> Result<String, StepResultError> {
        let path = self
            .steps_dir
            .join(step_dir_name(step))
            .join(STEP_ARTIFACTS_DIR)
            .join(ARTIFACTS_FILE);
        let none = |why: String| StepResultError::NoArtifacts {
            raw: raw.to_owned(),
            step: step.to_owned(),
            path: path.clone(),
            why,
        };
        if !self.artifacts.contains_key(step) {
            let text = std::fs::read_to_string(&path).map_err(|e| none(e.to_string()))?;
            let parsed: Artifacts = serde_json::from_str(&text)
                .map_err(|e| none(format!("not an artifacts document: {e}")))?;
            self.artifacts.insert(step.to_owned(), parsed);
        }
        let word = match io {
            vars::ArtifactIo::Inputs => "input",
            vars::ArtifactIo::Outputs => "output",
        };
        self.artifacts[step].values_json(io, name).ok_or_else(|| {
            none(match name {
                Some(n) => format!("no {word} artifact named {n:?}"),
                None => format!("no {word} artifacts"),
            })
        })
    }

    fn value(&mut self, raw: &str, step: &str, result: &str) -> Result<&Value, StepResultError> {
        let key = (step.to_owned(), result.to_owned());
        if !self.read.contains_key(&key) {
            let path = self
                .steps_dir
                .join(step_dir_name(step))
                .join(STEP_RESULTS_DIR)
                .join(result);
            let content =
                std::fs::read_to_string(&path).map_err(|source| StepResultError::Missing {
                    raw: raw.to_owned(),
                    step: step.to_owned(),
                    result: result.to_owned(),
                    path: path.clone(),
                    source,
                })?;
            self.read.insert(key.clone(), Value::parse(content));
        }
        Ok(&self.read[&key])
    }

    /// `text` with every step result reference replaced by one string.
    pub fn text(&mut self, text: &str) -> Result<String, StepResultError> {
        if !text.contains("$(steps.") {
            return Ok(text.to_owned());
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for o in vars::references(text) {
            let (step, result, selector) = match &o.reference {
                Reference::StepResult {
                    step,
                    result,
                    selector,
                } => (step, result, selector),
                Reference::StepArtifact { step, io, name } => {
                    let values = self.artifact(o.raw, step, *io, name.as_deref())?;
                    out.push_str(&text[last..o.start]);
                    out.push_str(&values);
                    last = o.end;
                    continue;
                }
                _ => continue,
            };
            out.push_str(&text[last..o.start]);
            let misfit = |why: &str| StepResultError::Misfit {
                raw: o.raw.to_owned(),
                why: why.to_owned(),
            };
            let value = self.value(o.raw, step, result)?;
            let piece = match (value, selector) {
                (Value::Text(t), Selector::Whole) => t.clone(),
                (Value::Array(a), Selector::Index(i)) => a
                    .get(*i)
                    .cloned()
                    .ok_or_else(|| misfit(&format!("the array has {} elements", a.len())))?,
                (Value::Object(m), Selector::Key(k)) => m
                    .get(k)
                    .cloned()
                    .ok_or_else(|| misfit(&format!("the object has no key {k:?}")))?,
                (Value::Array(_), _) => {
                    return Err(misfit(
                        "the result is an array: use $(…[i]), or $(…[*]) alone as an element of command or args",
                    ));
                }
                (Value::Object(_), _) => {
                    return Err(misfit("the result is an object: use $(….key)"));
                }
                (Value::Text(_), _) => {
                    return Err(misfit("the result is a string: it has no elements or keys"));
                }
            };
            out.push_str(&piece);
            last = o.end;
        }
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// A list (command and args, `when` values): an element that is exactly one
    /// `$(steps.<s>.results.<r>[*])` of an array result becomes its elements.
    pub fn list(&mut self, items: &[String]) -> Result<Vec<String>, StepResultError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match whole_array(item) {
                Some((raw, step, result)) => match self.value(raw, &step, &result)? {
                    Value::Array(a) => out.extend(a.iter().cloned()),
                    _ => {
                        return Err(StepResultError::Misfit {
                            raw: raw.to_owned(),
                            why: "[*] takes a whole array, and the result is not one".into(),
                        });
                    }
                },
                None => out.push(self.text(item)?),
            }
        }
        Ok(out)
    }

    /// `when` expressions with their inputs, values and CEL text replaced.
    pub fn when(
        &mut self,
        when: &[WhenExpression],
    ) -> Result<Vec<WhenExpression>, StepResultError> {
        when.iter()
            .map(|w| {
                Ok(WhenExpression {
                    input: w.input.as_deref().map(|i| self.text(i)).transpose()?,
                    operator: w.operator,
                    values: self.list(&w.values)?,
                    cel: w.cel.as_deref().map(|c| self.text(c)).transpose()?,
                })
            })
            .collect()
    }
}

/// `(raw, step, result)` when `text` is exactly `$(steps.<s>.results.<r>[*])`.
fn whole_array(text: &str) -> Option<(&str, String, String)> {
    match vars::alone(text)? {
        Reference::StepResult {
            step,
            result,
            selector: Selector::Star,
        } => Some((text, step, result)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("step-make").join("results");
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(results.join("one"), "foo").unwrap();
        std::fs::write(results.join("list"), r#"["a", "b", "c"]"#).unwrap();
        std::fs::write(results.join("obj"), r#"{"url": "ar.com", "digest": "sha"}"#).unwrap();
        dir
    }

    #[test]
    fn references_are_replaced_by_what_the_earlier_step_wrote() {
        let dir = steps_dir();
        let mut r = Reader::new(dir.path());
        let args: Vec<String> = [
            "run",
            "$(steps.make.results.list[*])",
            "$(steps.make.results.list[1])",
            "url=$(steps.make.results.obj.url)",
            "$(steps.make.results.one)/$(params.kept)",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            r.list(&args).unwrap(),
            [
                "run",
                "a",
                "b",
                "c",
                "b",
                "url=ar.com",
                "foo/$(params.kept)"
            ]
        );
        assert_eq!(r.text("no references").unwrap(), "no references");
    }

    #[test]
    fn a_missing_result_or_a_wrong_selector_says_which_reference() {
        let dir = steps_dir();
        let mut r = Reader::new(dir.path());
        let err = r.text("$(steps.make.results.nope)").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("$(steps.make.results.nope): step \"make\" wrote no result \"nope\""),
            "{err}"
        );
        let err = r.text("x $(steps.make.results.list[*])").unwrap_err();
        assert!(err.to_string().contains("the result is an array"), "{err}");
        let err = r.text("$(steps.make.results.list[9])").unwrap_err();
        assert!(err.to_string().contains("has 3 elements"), "{err}");
        let err = r.text("$(steps.make.results.one.k)").unwrap_err();
        assert!(err.to_string().contains("is a string"), "{err}");
    }

    #[test]
    fn when_expressions_read_step_results() {
        let dir = steps_dir();
        let mut r = Reader::new(dir.path());
        let when = [WhenExpression {
            input: Some("$(steps.make.results.one)".into()),
            operator: Some(tektite_api::v1::WhenOperator::In),
            values: vec!["$(steps.make.results.list[*])".into()],
            cel: None,
        }];
        let got = r.when(&when).unwrap();
        assert_eq!(got[0].input.as_deref(), Some("foo"));
        assert_eq!(got[0].values, ["a", "b", "c"]);
    }
}
