//! When expressions: guards on pipeline tasks and steps, and their evaluation after
//! substitution: `input` `in`/`notin` `values`, or a CEL expression that must yield a
//! boolean. One rule for the engine (pipeline tasks) and the entrypoint (steps).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `in` or `notin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WhenOperator {
    In,
    NotIn,
}

/// Either `input` + `operator` + `values`, or a `cel` expression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhenExpression {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<WhenOperator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
}

/// A when expression that cannot be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error("CEL expression {expr:?} does not parse: {reason}")]
    CelParse { expr: String, reason: String },
    #[error("CEL expression {expr:?} failed: {reason}")]
    CelEval { expr: String, reason: String },
    #[error("CEL expression {expr:?} gave {value}, not a boolean")]
    CelNotBool { expr: String, value: String },
    #[error("a when expression needs input, operator and values, or cel")]
    Incomplete,
}

/// Whether every expression allows the task to run.
pub fn allows(expressions: &[WhenExpression]) -> Result<bool, WhenError> {
    for e in expressions {
        if !one(e)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn one(e: &WhenExpression) -> Result<bool, WhenError> {
    if let Some(expr) = &e.cel {
        let program = cel::Program::compile(expr).map_err(|err| WhenError::CelParse {
            expr: expr.clone(),
            reason: err.to_string(),
        })?;
        return match program.execute(&cel::Context::default()) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(WhenError::CelNotBool {
                expr: expr.clone(),
                value: format!("{other:?}"),
            }),
            Err(err) => Err(WhenError::CelEval {
                expr: expr.clone(),
                reason: err.to_string(),
            }),
        };
    }
    let (Some(input), Some(operator)) = (&e.input, e.operator) else {
        return Err(WhenError::Incomplete);
    };
    let found = e.values.iter().any(|v| v == input);
    Ok(match operator {
        WhenOperator::In => found,
        WhenOperator::NotIn => !found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when(input: &str, operator: WhenOperator, values: &[&str]) -> WhenExpression {
        WhenExpression {
            input: Some(input.into()),
            operator: Some(operator),
            values: values.iter().map(|v| v.to_string()).collect(),
            cel: None,
        }
    }

    fn cel(expr: &str) -> WhenExpression {
        WhenExpression {
            cel: Some(expr.into()),
            ..WhenExpression::default()
        }
    }

    #[test]
    fn in_and_notin_test_membership() {
        assert!(allows(&[when("yes", WhenOperator::In, &["yes", "y"])]).unwrap());
        assert!(!allows(&[when("no", WhenOperator::In, &["yes"])]).unwrap());
        assert!(allows(&[when("no", WhenOperator::NotIn, &["yes"])]).unwrap());
    }

    #[test]
    fn every_expression_must_allow() {
        let both = [
            when("a", WhenOperator::In, &["a"]),
            when("b", WhenOperator::In, &["c"]),
        ];
        assert!(!allows(&both).unwrap());
        assert!(allows(&[]).unwrap());
    }

    #[test]
    fn cel_expressions_yield_booleans_or_errors() {
        assert!(allows(&[cel("'main' == 'main'")]).unwrap());
        assert!(!allows(&[cel("'feature-x'.startsWith('release')")]).unwrap());
        assert!(matches!(
            allows(&[cel("1 +")]),
            Err(WhenError::CelParse { .. })
        ));
        assert!(matches!(
            allows(&[cel("1 + 1")]),
            Err(WhenError::CelNotBool { .. })
        ));
    }
}
