//! One stream to the controller: connect (plain or TLS), authenticate with the
//! ServiceAccount token (read afresh on every connect, as the kubelet rotates it), say
//! Hello, then carry messages both ways.

use std::path::PathBuf;
use std::time::Duration;

use tektite_proto::agent::{self as pb, agent_client::AgentClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Where and how to reach the controller.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// `http://host:port` or `https://host:port`.
    pub address: String,
    /// The projected ServiceAccount token; none sends no credentials.
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle for an `https` address; the system's roots when absent.
    pub ca_file: Option<PathBuf>,
    pub hello: pb::Hello,
    /// Messages that may wait to be written to the stream.
    pub queue: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the controller address {address:?} is not a valid URI: {source}")]
    Address {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token in {0} is empty or not a valid header value")]
    Token(PathBuf),
    #[error("TLS setup for {address}: {source}")]
    Tls {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to the controller at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the controller refused the stream: {0}")]
    Refused(#[from] tonic::Status),
}

/// An open stream.
#[derive(Debug)]
pub struct Link {
    outbound: mpsc::Sender<pb::AgentMessage>,
    pub inbound: tonic::Streaming<pb::ControllerMessage>,
}

/// The stream cannot take more (it is gone or hopelessly behind).
#[derive(Debug, thiserror::Error)]
#[error("the stream to the controller is closed or full")]
pub struct Broken;

impl Link {
    pub async fn open(config: &LinkConfig) -> Result<Self, LinkError> {
        let address = &config.address;
        let mut endpoint = Endpoint::from_shared(address.clone())
            .map_err(|source| LinkError::Address {
                address: address.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if address.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &config.ca_file {
                Some(path) => tls.ca_certificate(Certificate::from_pem(read(path)?)),
                None => tls.with_enabled_roots(),
            };
            endpoint = endpoint.tls_config(tls).map_err(|source| LinkError::Tls {
                address: address.clone(),
                source,
            })?;
        }
        let token = match &config.token_file {
            Some(path) => {
                let text =
                    String::from_utf8(read(path)?).map_err(|_| LinkError::Token(path.clone()))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(LinkError::Token(path.clone()));
                }
                let value: MetadataValue<_> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| LinkError::Token(path.clone()))?;
                Some(value)
            }
            None => None,
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| LinkError::Connect {
                address: address.clone(),
                source,
            })?;
        let (outbound, rx) = mpsc::channel(config.queue.max(2));
        let link_hello = pb::AgentMessage {
            body: Some(pb::agent_message::Body::Hello(config.hello.clone())),
        };
        outbound
            .try_send(link_hello)
            .expect("a new channel has room for Hello");
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", token);
        }
        let inbound = AgentClient::new(channel)
            .report(request)
            .await?
            .into_inner();
        Ok(Self { outbound, inbound })
    }

    /// Queues `message` without waiting.
    pub fn send(&self, message: pb::AgentMessage) -> Result<(), Broken> {
        self.outbound.try_send(message).map_err(|_| Broken)
    }

    pub fn event(&self, event: pb::Event) -> Result<(), Broken> {
        self.send(pb::AgentMessage {
            body: Some(pb::agent_message::Body::Event(event)),
        })
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, LinkError> {
    std::fs::read(path).map_err(|source| LinkError::Read {
        path: path.clone(),
        source,
    })
}
