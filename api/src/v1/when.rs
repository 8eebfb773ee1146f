//! When expressions: guards on pipeline tasks and steps.

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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
