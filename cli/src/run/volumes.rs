//! What a run's volumes are made from on this machine: the ConfigMaps and Secrets given
//! among the input documents (the local kubelet reads them as it reads an API server's),
//! and the host directories bound with `-w NAME=PATH`.

use std::collections::BTreeMap;

use std::path::PathBuf;
use tektite_api::step::creds::{self, Credential};

use k8s_openapi::api::core::v1 as core;

/// The documents volumes may be made from.
#[derive(Debug, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, core::ConfigMap>,
    pub secrets: BTreeMap<String, core::Secret>,
    /// The StepActions among the files, by name.
    pub step_actions: BTreeMap<String, tektite_api::v1beta1::StepActionSpec>,
    /// The ServiceAccounts among the files, by name.
    pub service_accounts: BTreeMap<String, core::ServiceAccount>,
    /// `-w name=PATH`: host directories, by the run's workspace name.
    pub host: BTreeMap<String, PathBuf>,
}

impl Sources {
    /// What the Secrets among the files of ServiceAccount `name` (when it is among them)
    /// provide, as on a cluster; a Secret it lists that is not among the files provides
    /// none (`missing` names it).
    pub fn credentials(&self, name: &str) -> (Vec<Credential>, Vec<String>) {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        let Some(account) = self.service_accounts.get(name) else {
            return (out, missing);
        };
        for secret in creds::account_secrets(account) {
            match self.secrets.get(&secret) {
                Some(s) => out.extend(creds::of_secret(&secret, s)),
                None => missing.push(secret),
            }
        }
        (out, missing)
    }

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

    #[test]
    fn a_service_accounts_secrets_among_the_files_are_its_credentials() {
        let secret: core::Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "key", "annotations": {"tekton.dev/git-0": "github.com"}},
            "type": "kubernetes.io/ssh-auth",
            "data": {"ssh-privatekey": "eA=="}
        }))
        .unwrap();
        let account: core::ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "builder"},
            "secrets": [{"name": "key"}, {"name": "key"}, {"name": "absent"}]
        }))
        .unwrap();
        let sources = Sources {
            secrets: BTreeMap::from([("key".to_string(), secret)]),
            service_accounts: BTreeMap::from([("builder".to_string(), account)]),
            ..Sources::default()
        };
        let (credentials, missing) = sources.credentials("builder");
        assert_eq!(
            credentials,
            [Credential::SshGit {
                secret: "key".into(),
                url: "github.com".into()
            }]
        );
        assert_eq!(missing, ["absent"]);
        assert_eq!(sources.credentials("default"), (Vec::new(), Vec::new()));
    }
}
