//! The kube-scheduler's extender v1 JSON (k8s.io/kube-scheduler/extender/v1). The Go
//! types carry no JSON tags, so the field names on the wire are the Go field names.

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the scheduler sends to the filter and prioritize verbs.
#[derive(Debug, Deserialize)]
pub struct ExtenderArgs {
    #[serde(rename = "Pod", alias = "pod")]
    pub pod: Option<Pod>,
    /// Full Node objects, when the extender is not `nodeCacheCapable`.
    #[serde(rename = "Nodes", alias = "nodes", default)]
    pub nodes: Option<NodeList>,
    /// Node names, when the extender is `nodeCacheCapable`.
    #[serde(rename = "NodeNames", alias = "nodeNames", default)]
    pub node_names: Option<Vec<String>>,
}

/// A v1.NodeList, its Nodes kept as sent so that the filter answers them unchanged.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct NodeList {
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub items: Vec<Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

impl NodeList {
    /// The name of each Node, "" where a Node has none.
    pub fn names(&self) -> Vec<&str> {
        self.items
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap_or_default())
            .collect()
    }
}

/// Node name → why the Pod cannot go there, written as a JSON object.
#[derive(Debug, Default)]
pub struct FailedNodesMap<'a>(pub Vec<(&'a str, &'a str)>);

impl Serialize for FailedNodesMap<'_> {
    /// A reason many nodes share (a pinned Pod's, a chosen node's) is escaped once and
    /// written as it is for each of them: escaping thousands of copies was most of a
    /// filter's time at 5,000 nodes.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut map = s.serialize_map(Some(self.0.len()))?;
        let mut escaped: Option<(&str, Box<serde_json::value::RawValue>)> = None;
        for (node, why) in &self.0 {
            let same = escaped
                .as_ref()
                .is_some_and(|(last, _)| std::ptr::eq(*last, *why) || last == why);
            if !same {
                let raw = serde_json::value::to_raw_value(why).map_err(S::Error::custom)?;
                escaped = Some((why, raw));
            }
            if let Some((_, raw)) = &escaped {
                map.serialize_entry(node, raw)?;
            }
        }
        map.end()
    }
}

/// The filter verb's answer.
#[derive(Debug, Default, Serialize)]
pub struct ExtenderFilterResult<'a> {
    #[serde(rename = "Nodes", skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeList>,
    #[serde(rename = "NodeNames", skip_serializing_if = "Option::is_none")]
    pub node_names: Option<Vec<&'a str>>,
    #[serde(rename = "FailedNodes")]
    pub failed_nodes: FailedNodesMap<'a>,
    /// Failures preemption would not cure.
    #[serde(rename = "FailedAndUnresolvableNodes")]
    pub failed_and_unresolvable_nodes: FailedNodesMap<'a>,
    #[serde(rename = "Error")]
    pub error: &'a str,
}

/// One node's score from the prioritize verb.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostPriority<'a> {
    #[serde(rename = "Host")]
    pub host: &'a str,
    #[serde(rename = "Score")]
    pub score: i64,
}

/// The prioritize verb's answer.
pub type HostPriorityList<'a> = Vec<HostPriority<'a>>;

/// The highest score an extender gives (extender v1's MaxExtenderPriority).
pub const MAX_EXTENDER_PRIORITY: i64 = 10;
