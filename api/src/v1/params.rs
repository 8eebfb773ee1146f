//! Params: declarations (`ParamSpec`), bindings (`Param`) and their values.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::schema::preserve_unknown;

/// The type of a param or result: `string` (the default), `array` or `object`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Array,
    Object,
}

impl std::fmt::Display for ParamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Array => "array",
            ParamType::Object => "object",
        })
    }
}

/// A param or result value: a string, an array of strings or an object of strings.
///
/// Like Tekton, a YAML scalar that is not a string (`1.0`, `true`) is taken as its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    String(String),
    Array(Vec<String>),
    Object(BTreeMap<String, String>),
}

impl ParamValue {
    pub fn param_type(&self) -> ParamType {
        match self {
            ParamValue::String(_) => ParamType::String,
            ParamValue::Array(_) => ParamType::Array,
            ParamValue::Object(_) => ParamType::Object,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Every string inside the value, in order.
    pub fn strings(&self) -> Vec<&str> {
        match self {
            ParamValue::String(s) => vec![s.as_str()],
            ParamValue::Array(a) => a.iter().map(String::as_str).collect(),
            ParamValue::Object(o) => o.values().map(String::as_str).collect(),
        }
    }

    /// Every string inside the value, mutably, in order.
    pub fn strings_mut(&mut self) -> Vec<&mut String> {
        match self {
            ParamValue::String(s) => vec![s],
            ParamValue::Array(a) => a.iter_mut().collect(),
            ParamValue::Object(o) => o.values_mut().collect(),
        }
    }
}

impl Default for ParamValue {
    fn default() -> Self {
        ParamValue::String(String::new())
    }
}

impl From<&str> for ParamValue {
    fn from(s: &str) -> Self {
        ParamValue::String(s.to_owned())
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::String(v) => v.serialize(s),
            ParamValue::Array(v) => v.serialize(s),
            ParamValue::Object(v) => v.serialize(s),
        }
    }
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| {
                    scalar_text(i).ok_or_else(|| D::Error::custom("array items must be strings"))
                })
                .collect::<Result<_, _>>()
                .map(ParamValue::Array),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, i)| {
                    scalar_text(i).map(|s| (k.clone(), s)).ok_or_else(|| {
                        D::Error::custom(format!("object key {k:?} must have a string value"))
                    })
                })
                .collect::<Result<_, _>>()
                .map(ParamValue::Object),
            serde_json::Value::Null => Err(D::Error::custom(
                "a value is required (string, array or object)",
            )),
            other => Ok(ParamValue::String(scalar_text(other).unwrap_or_default())),
        }
    }
}

impl JsonSchema for ParamValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ParamValue".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        preserve_unknown(g)
    }
    fn inline_schema() -> bool {
        true
    }
}

/// The declared type of one key of an object param or result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropertySpec {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ParamType>,
}

/// A param a Task or Pipeline declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParamSpec {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ParamType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, PropertySpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ParamValue>,
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub enum_: Vec<String>,
}

impl ParamSpec {
    /// The declared type, or the type the default implies, or `string`.
    pub fn effective_type(&self) -> ParamType {
        self.type_
            .or_else(|| self.properties.as_ref().map(|_| ParamType::Object))
            .or_else(|| self.default.as_ref().map(ParamValue::param_type))
            .unwrap_or_default()
    }
}

/// A value bound to a param.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    pub name: String,
    pub value: ParamValue,
}
