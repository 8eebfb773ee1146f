//! What a run's volumes are made from on this machine: the ConfigMaps and Secrets given
//! among the input documents (the local kubelet reads them as it reads an API server's),
//! and the host directories bound with `-w NAME=PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1 as core;

/// The documents volumes may be made from.
#[derive(Debug, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, core::ConfigMap>,
    pub secrets: BTreeMap<String, core::Secret>,
    /// The StepActions among the files, by name.
    pub step_actions: BTreeMap<String, tektite_api::v1beta1::StepActionSpec>,
    /// `-w name=PATH`: host directories, by the run's workspace name.
    pub host: BTreeMap<String, PathBuf>,
}

impl Sources {
    /// The data of ConfigMap (`secret` false) or Secret `name`, as a kubelet reads it
    /// (`data` and `binaryData`; `data` and `stringData`); `None` when it is not given.
    pub fn data(&self, secret: bool, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let text = |m: &Option<BTreeMap<String, String>>| {
            m.iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect::<Vec<_>>()
        };
        let bytes = |m: &Option<BTreeMap<String, k8s_openapi::ByteString>>| {
            m.iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect::<Vec<_>>()
        };
        if secret {
            let s = self.secrets.get(name)?;
            Some(
                bytes(&s.data)
                    .into_iter()
                    .chain(text(&s.string_data))
                    .collect(),
            )
        } else {
            let m = self.config_maps.get(name)?;
            Some(
                text(&m.data)
                    .into_iter()
                    .chain(bytes(&m.binary_data))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_string_data_wins_and_a_missing_document_is_none() {
        let secret: core::Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s"},
            "data": {"a": "eA==", "b": "eQ=="},
            "stringData": {"b": "z"}
        }))
        .unwrap();
        let sources = Sources {
            secrets: BTreeMap::from([("s".to_string(), secret)]),
            ..Sources::default()
        };
        let data = sources.data(true, "s").unwrap();
        assert_eq!(data["a"], b"x");
        assert_eq!(data["b"], b"z");
        assert_eq!(sources.data(false, "s"), None);
        assert_eq!(sources.data(true, "t"), None);
    }
}
