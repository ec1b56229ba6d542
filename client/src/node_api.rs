//! The flags that say which node a command talks to.

use std::path::PathBuf;

use clap::Args;

use crate::{Client, ClientError};

/// Where the node's API is (`--node`, `--token-file`).
#[derive(Debug, Clone, Args)]
pub struct NodeApi {
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7070", global = true)]
    pub node: String,
    /// Bearer token file, for a node that requires one.
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

impl NodeApi {
    /// The node at `node`, without a token.
    pub fn at(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            token_file: None,
        }
    }

    /// The bearer token from the token file, if there is one.
    pub fn token(&self) -> Result<Option<String>, ClientError> {
        self.token_file
            .as_deref()
            .map(crate::read_token_file)
            .transpose()
    }

    /// An untyped call (for scripts and the simulator, which read a few fields of many
    /// documents): the JSON answer as a value (a string when it is not JSON); a non-2xx
    /// answer is [`ClientError::Refused`] with the node's message.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<crate::http::Body<'_>>,
        wait: std::time::Duration,
    ) -> Result<serde_json::Value, ClientError> {
        let client = self.client()?;
        let (code, text) = client.raw(method, path, body, wait)?;
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        if !(200..300).contains(&code) {
            let message = v["error"]
                .as_str()
                .map_or(text.trim().to_string(), str::to_string);
            return Err(ClientError::Refused {
                node: client.node().to_string(),
                status: code,
                message,
            });
        }
        Ok(v)
    }

    /// A client of the node, with the token.
    pub fn client(&self) -> Result<Client, ClientError> {
        Client::new(&self.node, self.token()?)
    }
}
