//! A real OCI registry (Debian's `docker-registry`, the CNCF distribution registry;
//! `.ci/run` installs it) on 127.0.0.1 over plain HTTP, its storage in the test's temp
//! dir, and images pushed to it by the test itself. Ended by its PID when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

#[derive(Debug)]
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Registry {
    /// Starts the registry under `dir`; returns once it answers `/v2/`.
    pub async fn start(dir: &Path) -> Registry {
        assert!(
            Command::new("docker-registry")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "docker-registry is not on PATH: install Debian's docker-registry package (.ci/run does)"
        );
        std::fs::create_dir_all(dir.join("storage")).expect("the registry's storage");
        let port = crate::node::free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("storage").display()
            ),
        )
        .expect("writing the registry's config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("the log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let mut r = Registry { child, addr };
        let began = Instant::now();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&r.addr) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return r;
                }
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
                panic!("docker-registry exited ({status}):\n{log}");
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the registry did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn client(&self) -> Client {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![self.addr.clone()]),
            ..ClientConfig::default()
        })
    }

    /// Pushes `repository:tag`, an image whose config says `entrypoint` and `cmd` (and one
    /// small layer); returns its reference as a Pod names it.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        entrypoint: &[&str],
        cmd: &[&str],
    ) -> String {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let image = format!("{}/{repository}:{tag}", self.addr);
        let reference: Reference = image.parse().expect("a reference");
        self.client()
            .push(
                &reference,
                &[ImageLayer::new(
                    b"not a real layer".to_vec(),
                    "application/vnd.oci.image.layer.v1.tar".into(),
                    None,
                )],
                Config::new(
                    serde_json::to_vec(&config).expect("JSON"),
                    "application/vnd.oci.image.config.v1+json".into(),
                    None,
                ),
                &RegistryAuth::Anonymous,
                None,
            )
            .await
            .expect("pushing the image");
        image
    }
}

impl Registry {
    /// Pushes `repository:tag`, a Tekton bundle: one gzipped-tar layer per `(kind, name,
    /// document)`, annotated as Tekton's bundle contract says; returns its reference.
    pub async fn push_bundle(
        &self,
        repository: &str,
        tag: &str,
        objects: &[(&str, &str, &str)],
    ) -> String {
        let layers: Vec<ImageLayer> = objects
            .iter()
            .map(|(kind, name, text)| {
                let mut tarball = tar::Builder::new(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::default(),
                ));
                let mut header = tar::Header::new_gnu();
                header.set_size(text.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                tarball
                    .append_data(&mut header, name, text.as_bytes())
                    .expect("a tar entry");
                let gz = tarball.into_inner().expect("a tar").finish().expect("gzip");
                let annotations = std::collections::BTreeMap::from([
                    (
                        "dev.tekton.image.apiVersion".to_owned(),
                        "tekton.dev/v1".to_owned(),
                    ),
                    ("dev.tekton.image.kind".to_owned(), kind.to_string()),
                    ("dev.tekton.image.name".to_owned(), name.to_string()),
                ]);
                ImageLayer::new(
                    gz,
                    "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    Some(annotations),
                )
            })
            .collect();
        let image = format!("{}/{repository}:{tag}", self.addr);
        let reference: Reference = image.parse().expect("a reference");
        self.client()
            .push(
                &reference,
                &layers,
                Config::new(
                    b"{}".to_vec(),
                    "application/vnd.oci.image.config.v1+json".into(),
                    None,
                ),
                &RegistryAuth::Anonymous,
                None,
            )
            .await
            .expect("pushing the bundle");
        image
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        crate::stop(&mut self.child);
    }
}
