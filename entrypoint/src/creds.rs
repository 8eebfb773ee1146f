//! The credentials of the TaskRun's ServiceAccount, written for the step's tools before its
//! command starts, as Tekton's entrypoint writes them: from the Secrets mounted under
//! `/tekton/creds-secrets/<secret>` into `/tekton/creds` (git: `.gitconfig` and
//! `.git-credentials`; ssh: `.ssh/config`, `.ssh/id_<secret>`, `.ssh/known_hosts`; docker:
//! `.docker/config.json`), then copied into `$HOME`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tektite_api::step::creds::{CREDS_FILES, Credential};

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("reading {key:?} of Secret {secret:?} ({path}): {source}")]
    Read {
        secret: String,
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} of Secret {secret:?} is not a docker config: {source}")]
    DockerConfig {
        secret: String,
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{url:?} of Secret {secret:?} is not a URL with a scheme (https://host/...)")]
    Url { secret: String, url: String },
}

/// Writes every credential into `dir`, reading the Secrets under `secrets`.
pub fn write(creds: &[Credential], secrets: &Path, dir: &Path) -> Result<(), CredsError> {
    let read = |secret: &str, key: &'static str| {
        let path = secrets.join(secret).join(key);
        fs::read_to_string(&path).map_err(|source| CredsError::Read {
            secret: secret.into(),
            key,
            path,
            source,
        })
    };
    let mut gitconfig = String::new();
    let mut git_credentials: Vec<(bool, String)> = Vec::new();
    let mut ssh_hosts: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut docker = serde_json::Map::new();
    let mut docker_basic = serde_json::Map::new();
    for c in creds {
        match c {
            Credential::BasicGit { secret, url } => {
                let (user, password) = (read(secret, "username")?, read(secret, "password")?);
                let (scheme, rest) = url.split_once("://").ok_or_else(|| CredsError::Url {
                    secret: secret.clone(),
                    url: url.clone(),
                })?;
                let has_path = rest.split_once('/').is_some_and(|(_, p)| !p.is_empty());
                if gitconfig.is_empty() {
                    gitconfig.push_str("[credential]\n\thelper = store\n");
                }
                gitconfig.push_str(&format!(
                    "[credential {url:?}]\n\tusername = {}\n{}",
                    user.replace('\\', "\\\\"),
                    if has_path {
                        "\tuseHttpPath = true\n"
                    } else {
                        ""
                    }
                ));
                let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
                git_credentials.push((
                    has_path,
                    format!("{scheme}://{}:{}@{rest}", encode(&user), encode(&password)),
                ));
            }
            Credential::SshGit { secret, url } => {
                match ssh_hosts.iter_mut().find(|(u, _)| u == url) {
                    Some((_, secrets)) => secrets.push(secret),
                    None => ssh_hosts.push((url, vec![secret])),
                }
            }
            Credential::BasicDocker { secret, url } => {
                let (user, password) = (read(secret, "username")?, read(secret, "password")?);
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                docker_basic.insert(
                    url.clone(),
                    serde_json::json!({"username": user, "password": password, "auth": auth, "email": "not@val.id"}),
                );
            }
            Credential::DockerCfg { secret } => {
                docker.extend(docker_auths(
                    secret,
                    &read(secret, ".dockercfg")?,
                    false,
                    secrets,
                )?);
            }
            Credential::DockerConfig { secret } => {
                docker.extend(docker_auths(
                    secret,
                    &read(secret, ".dockerconfigjson")?,
                    true,
                    secrets,
                )?);
            }
        }
    }
    // Basic-auth entries win over the config files, as in Tekton.
    docker.extend(docker_basic);

    if !git_credentials.is_empty() {
        // URLs without a path first, so a host-wide entry does not shadow a repository's.
        git_credentials.sort_by_key(|(has_path, _)| *has_path);
        let lines: String = git_credentials
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        write_file(&dir.join(".git-credentials"), lines.as_bytes())?;
    }
    if !ssh_hosts.is_empty() {
        gitconfig.push_str(&write_ssh(&ssh_hosts, &read, dir)?);
    }
    if !gitconfig.is_empty() {
        write_file(&dir.join(".gitconfig"), gitconfig.as_bytes())?;
    }
    if !docker.is_empty() {
        let config = serde_json::json!({ "auths": docker });
        let path = dir.join(".docker").join("config.json");
        make_dir(&dir.join(".docker"))?;
        write_file(&path, config.to_string().as_bytes())?;
    }
    Ok(())
}

/// The registry → auth entries of a `.dockercfg` (a bare map) or `.dockerconfigjson`
/// (`{"auths": map}`).
fn docker_auths(
    secret: &str,
    text: &str,
    wrapped: bool,
    secrets: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, CredsError> {
    let key = if wrapped {
        ".dockerconfigjson"
    } else {
        ".dockercfg"
    };
    let bad = |source| CredsError::DockerConfig {
        secret: secret.into(),
        path: secrets.join(secret).join(key),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
    let auths = if wrapped {
        value.get("auths").cloned().unwrap_or_default()
    } else {
        value
    };
    match auths {
        serde_json::Value::Object(m) => Ok(m),
        serde_json::Value::Null => Ok(Default::default()),
        other => Err(bad(serde::de::Error::custom(format!(
            "expected a map of registries, found {other}"
        )))),
    }
}

/// `.ssh/config`, the keys and known_hosts; returns the `.gitconfig` lines that send
/// repository-specific URLs to their host alias.
fn write_ssh(
    hosts: &[(&str, Vec<&str>)],
    read: &dyn Fn(&str, &'static str) -> Result<String, CredsError>,
    dir: &Path,
) -> Result<String, CredsError> {
    let ssh = dir.join(".ssh");
    make_dir(&ssh)?;
    let mut ordered: Vec<&(&str, Vec<&str>)> = hosts.iter().collect();
    // Host-wide entries first: ssh uses the first Host block that matches.
    ordered.sort_by_key(|(url, _)| url.contains('/'));
    let (mut config, mut known_hosts, mut gitconfig) = (String::new(), Vec::new(), String::new());
    let mut written = BTreeMap::new();
    for (url, secrets) in ordered {
        let (address, path) = url.split_once('/').map_or((*url, ""), |(a, p)| (a, p));
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
            _ => (address, "22"),
        };
        let path = path.trim_matches('/');
        let alias = if path.is_empty() {
            host.to_string()
        } else {
            let alias = format!("{host}--{}", path.replace('/', "--"));
            gitconfig.push_str(&format!(
                "[url \"git@{alias}:{path}.git\"]\n\tinsteadOf = git@{host}:{path}.git\n"
            ));
            let original = if port == "22" {
                host.to_string()
            } else {
                format!("{host}:{port}")
            };
            gitconfig.push_str(&format!(
                "[url \"ssh://{alias}/{path}.git\"]\n\tinsteadOf = ssh://{original}/{path}.git\n"
            ));
            alias
        };
        config.push_str(&format!(
            "Host {alias}\n    HostName {host}\n    Port {port}\n"
        ));
        for secret in secrets {
            let key_file = ssh.join(format!("id_{secret}"));
            if written.insert(secret.to_string(), ()).is_none() {
                write_file(&key_file, read(secret, "ssh-privatekey")?.as_bytes())?;
                if let Ok(known) = read(secret, "known_hosts") {
                    known_hosts.push(known);
                }
            }
            config.push_str(&format!("    IdentityFile {}\n", key_file.display()));
        }
    }
    write_file(&ssh.join("config"), config.as_bytes())?;
    if !known_hosts.is_empty() {
        write_file(&ssh.join("known_hosts"), known_hosts.join("\n").as_bytes())?;
    }
    Ok(gitconfig)
}

/// Copies what [`write`] left in `dir` into `home` (nothing when they are the same).
pub fn copy_home(dir: &Path, home: &Path) -> Result<(), CredsError> {
    if dir == home {
        return Ok(());
    }
    for name in CREDS_FILES {
        copy(&dir.join(name), &home.join(name))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), CredsError> {
    let Ok(meta) = fs::symlink_metadata(from) else {
        return Ok(());
    };
    if meta.is_dir() {
        make_dir(to)?;
        let entries = fs::read_dir(from).map_err(|source| CredsError::Write {
            path: from.into(),
            source,
        })?;
        for entry in entries.flatten() {
            copy(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        let bytes = fs::read(from).map_err(|source| CredsError::Write {
            path: from.into(),
            source,
        })?;
        write_file(to, &bytes)
    }
}

fn make_dir(path: &Path) -> Result<(), CredsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| CredsError::Write {
            path: path.into(),
            source,
        })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CredsError> {
    let err = |source| CredsError::Write {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        make_dir(parent)?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn secret(root: &Path, name: &str, files: &[(&str, &str)]) {
        fs::create_dir_all(root.join(name)).unwrap();
        for (k, v) in files {
            fs::write(root.join(name).join(k), v).unwrap();
        }
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn mode(path: PathBuf) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn git_docker_and_ssh_credentials_are_written_and_copied_home() {
        let tmp = tempfile::tempdir().unwrap();
        let (secrets, dir, home) = (
            tmp.path().join("secrets"),
            tmp.path().join("creds"),
            tmp.path().join("home"),
        );
        secret(
            &secrets,
            "gh",
            &[("username", "bot"), ("password", "p@ss:w/rd")],
        );
        secret(
            &secrets,
            "key",
            &[
                ("ssh-privatekey", "-----BEGIN KEY-----\n"),
                ("known_hosts", "github.com ssh-ed25519 AAAA"),
            ],
        );
        secret(&secrets, "repo-key", &[("ssh-privatekey", "REPO KEY\n")]);
        secret(
            &secrets,
            "regcred",
            &[(
                ".dockerconfigjson",
                r#"{"auths":{"registry.cn-hangzhou.aliyuncs.com":{"auth":"dTpw"}}}"#,
            )],
        );
        let creds = [
            Credential::BasicGit {
                secret: "gh".into(),
                url: "https://github.com/org/repo".into(),
            },
            Credential::BasicGit {
                secret: "gh".into(),
                url: "https://gitlab.com".into(),
            },
            Credential::SshGit {
                secret: "repo-key".into(),
                url: "github.com/org/private".into(),
            },
            Credential::SshGit {
                secret: "key".into(),
                url: "github.com".into(),
            },
            Credential::DockerConfig {
                secret: "regcred".into(),
            },
            Credential::BasicDocker {
                secret: "gh".into(),
                url: "https://index.docker.io/v1/".into(),
            },
        ];
        write(&creds, &secrets, &dir).unwrap();

        assert_eq!(
            read(dir.join(".git-credentials")),
            "https://bot:p%40ss%3Aw%2Frd@gitlab.com\nhttps://bot:p%40ss%3Aw%2Frd@github.com/org/repo\n"
        );
        let gitconfig = read(dir.join(".gitconfig"));
        assert_eq!(
            gitconfig,
            "[credential]\n\thelper = store\n\
             [credential \"https://github.com/org/repo\"]\n\tusername = bot\n\tuseHttpPath = true\n\
             [credential \"https://gitlab.com\"]\n\tusername = bot\n\
             [url \"git@github.com--org--private:org/private.git\"]\n\tinsteadOf = git@github.com:org/private.git\n\
             [url \"ssh://github.com--org--private/org/private.git\"]\n\tinsteadOf = ssh://github.com/org/private.git\n"
        );
        let ssh = dir.join(".ssh");
        assert_eq!(
            read(ssh.join("config")),
            format!(
                "Host github.com\n    HostName github.com\n    Port 22\n    IdentityFile {0}/id_key\n\
                 Host github.com--org--private\n    HostName github.com\n    Port 22\n    IdentityFile {0}/id_repo-key\n",
                ssh.display()
            )
        );
        assert_eq!(read(ssh.join("id_key")), "-----BEGIN KEY-----\n");
        assert_eq!(read(ssh.join("known_hosts")), "github.com ssh-ed25519 AAAA");
        let docker: serde_json::Value =
            serde_json::from_str(&read(dir.join(".docker/config.json"))).unwrap();
        assert_eq!(
            docker["auths"]["registry.cn-hangzhou.aliyuncs.com"]["auth"],
            "dTpw"
        );
        assert_eq!(
            docker["auths"]["https://index.docker.io/v1/"]["auth"],
            "Ym90OnBAc3M6dy9yZA=="
        );
        assert_eq!(mode(ssh.join("id_key")), 0o600);
        assert_eq!(mode(ssh.clone()), 0o700);

        copy_home(&dir, &home).unwrap();
        for name in [
            ".gitconfig",
            ".git-credentials",
            ".ssh/config",
            ".ssh/id_repo-key",
            ".docker/config.json",
        ] {
            assert_eq!(read(home.join(name)), read(dir.join(name)), "{name}");
        }
        assert_eq!(mode(home.join(".ssh/id_key")), 0o600);
    }

    #[test]
    fn a_port_goes_into_the_ssh_config_and_the_rewrite() {
        let tmp = tempfile::tempdir().unwrap();
        let (secrets, dir) = (tmp.path().join("secrets"), tmp.path().join("creds"));
        secret(&secrets, "k", &[("ssh-privatekey", "K")]);
        write(
            &[Credential::SshGit {
                secret: "k".into(),
                url: "git.example.com:2222/team/app".into(),
            }],
            &secrets,
            &dir,
        )
        .unwrap();
        assert!(read(dir.join(".ssh/config")).starts_with(
            "Host git.example.com--team--app\n    HostName git.example.com\n    Port 2222\n"
        ));
        assert!(read(dir.join(".gitconfig")).contains(
            "[url \"ssh://git.example.com--team--app/team/app.git\"]\n\tinsteadOf = ssh://git.example.com:2222/team/app.git\n"
        ));
    }

    #[test]
    fn missing_keys_and_bad_configs_say_which_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let (secrets, dir) = (tmp.path().join("secrets"), tmp.path().join("creds"));
        secret(&secrets, "half", &[("username", "u")]);
        secret(&secrets, "junk", &[(".dockerconfigjson", "{not json")]);
        let err = |c: Credential| write(&[c], &secrets, &dir).unwrap_err().to_string();
        let e = err(Credential::BasicGit {
            secret: "half".into(),
            url: "https://h".into(),
        });
        assert!(e.contains(r#""password" of Secret "half""#), "{e}");
        let e = err(Credential::DockerConfig {
            secret: "junk".into(),
        });
        assert!(e.contains(r#"Secret "junk" is not a docker config"#), "{e}");
        secret(&secrets, "ok", &[("username", "u"), ("password", "p")]);
        let e = err(Credential::BasicGit {
            secret: "ok".into(),
            url: "github.com".into(),
        });
        assert!(e.contains("not a URL with a scheme"), "{e}");
        assert!(!dir.join(".gitconfig").exists());
    }
}
