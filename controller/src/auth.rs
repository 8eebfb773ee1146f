//! Who is calling: an agent's projected ServiceAccount token, checked with a TokenReview
//! for the controller's audience. Only the agent's own ServiceAccount is accepted.

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

/// The extra field a bound token carries with the node its Pod runs on.
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";

/// An authenticated agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub username: String,
    /// The node of the agent's Pod, when the token says.
    pub node: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token in the call's authorization metadata")]
    NoToken,
    #[error("the token was not accepted: {0}")]
    Rejected(String),
    #[error("{0:?} is not the node agent's ServiceAccount ({1:?})")]
    WrongAccount(String, String),
    #[error("asking the API server to review the token: {0}")]
    Review(#[source] kube::Error),
}

#[derive(Clone)]
pub struct Reviewer {
    client: kube::Client,
    audience: String,
    /// `system:serviceaccount:<namespace>:<name>` of the agents.
    agent_user: String,
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviewer")
            .field("audience", &self.audience)
            .field("agent_user", &self.agent_user)
            .finish()
    }
}

impl Reviewer {
    pub fn new(client: kube::Client, audience: &str, namespace: &str, account: &str) -> Self {
        Self {
            client,
            audience: audience.into(),
            agent_user: format!("system:serviceaccount:{namespace}:{account}"),
        }
    }

    /// The agent `authorization` names, or why not.
    pub async fn review(&self, authorization: Option<&str>) -> Result<Agent, AuthError> {
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::NoToken)?;
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(AuthError::Review)?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(AuthError::Rejected(
                status.error.unwrap_or_else(|| "not authenticated".into()),
            ));
        }
        if let Some(audiences) = &status.audiences
            && !audiences.contains(&self.audience)
        {
            return Err(AuthError::Rejected(format!(
                "the token is not for audience {:?}",
                self.audience
            )));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        if username != self.agent_user {
            return Err(AuthError::WrongAccount(username, self.agent_user.clone()));
        }
        let extra: BTreeMap<String, Vec<String>> = user.extra.unwrap_or_default();
        Ok(Agent {
            username,
            node: extra.get(NODE_NAME_EXTRA).and_then(|v| v.first().cloned()),
        })
    }
}
