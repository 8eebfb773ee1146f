//! Credentials from the ServiceAccount's Secrets, as Tekton hands them to steps. A Secret
//! listed by the TaskRun's ServiceAccount provides credentials by its type and its
//! `tekton.dev/git-*` / `tekton.dev/docker-*` annotations (the values, in annotation-key
//! order, are the hosts or URLs). The pod builder mounts each such Secret at
//! `/tekton/creds-secrets/<secret>` and passes one [`Credential`] per source to every
//! step's entrypoint, which writes `.gitconfig`, `.git-credentials`, `.ssh/` and
//! `.docker/config.json` into `/tekton/creds` and copies them into `$HOME`.

use std::collections::BTreeMap;

/// Where the Secrets are mounted, one directory each.
pub const SECRETS_DIR: &str = "/tekton/creds-secrets";
/// Where each step's entrypoint writes the credentials before copying them home.
pub const CREDS_DIR: &str = "/tekton/creds";
/// What is written, and copied into `$HOME`.
pub const CREDS_FILES: [&str; 4] = [".docker", ".gitconfig", ".git-credentials", ".ssh"];

const GIT_ANNOTATION: &str = "tekton.dev/git-";
const DOCKER_ANNOTATION: &str = "tekton.dev/docker-";

/// One credential source. The flags are Tekton's entrypoint flags, spelled with two
/// dashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `--basic-git=<secret>=<url>`: a kubernetes.io/basic-auth Secret for a git URL.
    BasicGit { secret: String, url: String },
    /// `--ssh-git=<secret>=<host[:port][/path]>`: a kubernetes.io/ssh-auth Secret.
    SshGit { secret: String, url: String },
    /// `--basic-docker=<secret>=<registry>`: a kubernetes.io/basic-auth Secret.
    BasicDocker { secret: String, url: String },
    /// `--docker-config=<secret>`: a kubernetes.io/dockerconfigjson Secret.
    DockerConfig { secret: String },
    /// `--docker-cfg=<secret>`: a kubernetes.io/dockercfg Secret.
    DockerCfg { secret: String },
}

impl Credential {
    /// The Secret it comes from.
    pub fn secret(&self) -> &str {
        match self {
            Self::BasicGit { secret, .. }
            | Self::SshGit { secret, .. }
            | Self::BasicDocker { secret, .. }
            | Self::DockerConfig { secret }
            | Self::DockerCfg { secret } => secret,
        }
    }

    /// The flag and its value.
    pub(super) fn to_flag(&self) -> (&'static str, String) {
        match self {
            Self::BasicGit { secret, url } => ("--basic-git", format!("{secret}={url}")),
            Self::SshGit { secret, url } => ("--ssh-git", format!("{secret}={url}")),
            Self::BasicDocker { secret, url } => ("--basic-docker", format!("{secret}={url}")),
            Self::DockerConfig { secret } => ("--docker-config", secret.clone()),
            Self::DockerCfg { secret } => ("--docker-cfg", secret.clone()),
        }
    }

    /// The flag (with its dashes) that `name` (without them) spells, if a credential's.
    pub(super) fn flag(name: &str) -> Option<&'static str> {
        FLAGS
            .into_iter()
            .find(|f| f.strip_prefix("--") == Some(name))
    }

    /// Reads a flag back: `flag` is one of [`Credential::flag`]'s answers.
    pub(super) fn from_flag(flag: &str, value: &str) -> Result<Self, String> {
        let pair = || {
            value
                .split_once('=')
                .filter(|(s, u)| !s.is_empty() && !u.is_empty())
                .map(|(s, u)| (s.to_string(), u.to_string()))
                .ok_or_else(|| "it must be SECRET=URL".to_string())
        };
        let single = || {
            Some(value.to_string())
                .filter(|s| !s.is_empty() && !s.contains('='))
                .ok_or_else(|| "it must name a Secret".to_string())
        };
        match flag {
            "--basic-git" => pair().map(|(secret, url)| Self::BasicGit { secret, url }),
            "--ssh-git" => pair().map(|(secret, url)| Self::SshGit { secret, url }),
            "--basic-docker" => pair().map(|(secret, url)| Self::BasicDocker { secret, url }),
            "--docker-config" => single().map(|secret| Self::DockerConfig { secret }),
            "--docker-cfg" => single().map(|secret| Self::DockerCfg { secret }),
            other => Err(format!("{other} is not a credential flag")),
        }
    }
}

const FLAGS: [&str; 5] = [
    "--basic-git",
    "--ssh-git",
    "--basic-docker",
    "--docker-config",
    "--docker-cfg",
];

/// The Secrets a ServiceAccount lists, each once, in its order.
pub fn account_secrets(account: &k8s_openapi::api::core::v1::ServiceAccount) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in account
        .secrets
        .iter()
        .flatten()
        .filter_map(|s| s.name.clone())
    {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The credentials Secret `name` provides ([`from_secret`] with its type and annotations).
pub fn of_secret(name: &str, secret: &k8s_openapi::api::core::v1::Secret) -> Vec<Credential> {
    from_secret(
        name,
        secret.type_.as_deref().unwrap_or_default(),
        secret
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    )
}

/// The credentials Secret `name` of type `kind` provides, given its annotations: git and
/// docker URLs from the annotations for basic-auth, git hosts for ssh-auth, and the
/// docker config types whatever their annotations. Other types provide none.
pub fn from_secret(
    name: &str,
    kind: &str,
    annotations: &BTreeMap<String, String>,
) -> Vec<Credential> {
    let urls = |prefix: &str| -> Vec<String> {
        let mut urls: Vec<String> = annotations
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        // Tekton sorts the values, not the keys.
        urls.sort();
        urls
    };
    let secret = name.to_string();
    match kind {
        "kubernetes.io/basic-auth" => {
            let docker = urls(DOCKER_ANNOTATION)
                .into_iter()
                .map(|url| Credential::BasicDocker {
                    secret: secret.clone(),
                    url,
                });
            let git = urls(GIT_ANNOTATION)
                .into_iter()
                .map(|url| Credential::BasicGit {
                    secret: secret.clone(),
                    url,
                });
            docker.chain(git).collect()
        }
        "kubernetes.io/ssh-auth" => urls(GIT_ANNOTATION)
            .into_iter()
            .map(|url| Credential::SshGit {
                secret: secret.clone(),
                url,
            })
            .collect(),
        "kubernetes.io/dockerconfigjson" => vec![Credential::DockerConfig { secret }],
        "kubernetes.io/dockercfg" => vec![Credential::DockerCfg { secret }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_provide_credentials_by_type_and_annotation() {
        let a = annotations(&[
            ("tekton.dev/git-1", "https://gitlab.com"),
            ("tekton.dev/git-0", "https://github.com"),
            ("tekton.dev/docker-0", "https://index.docker.io/v1/"),
            ("other", "x"),
        ]);
        assert_eq!(
            from_secret("basic", "kubernetes.io/basic-auth", &a),
            [
                Credential::BasicDocker {
                    secret: "basic".into(),
                    url: "https://index.docker.io/v1/".into()
                },
                Credential::BasicGit {
                    secret: "basic".into(),
                    url: "https://github.com".into()
                },
                Credential::BasicGit {
                    secret: "basic".into(),
                    url: "https://gitlab.com".into()
                },
            ]
        );
        let seed = annotations(&[("tekton.dev/git-0", "github.com")]);
        assert_eq!(
            from_secret("github-auth", "kubernetes.io/ssh-auth", &seed),
            [Credential::SshGit {
                secret: "github-auth".into(),
                url: "github.com".into()
            }]
        );
        // `kubectl create secret docker-registry` needs no annotation.
        assert_eq!(
            from_secret(
                "aliyun-registry",
                "kubernetes.io/dockerconfigjson",
                &BTreeMap::new()
            ),
            [Credential::DockerConfig {
                secret: "aliyun-registry".into()
            }]
        );
        assert!(from_secret("plain", "Opaque", &a).is_empty());
        assert!(
            from_secret(
                "no-annotations",
                "kubernetes.io/basic-auth",
                &BTreeMap::new()
            )
            .is_empty()
        );
    }
}
