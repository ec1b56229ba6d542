//! The HTTP client: [`Client`] talks to one node's API (bearer token, JSON and
//! MessagePack bodies, streamed uploads and downloads) over plain HTTP with `ureq`.
//!
//! Every error names the node's address. A node's refusal (a 4xx or 5xx status) becomes
//! [`ClientError::Refused`] carrying the node's own message; [`Client::raw`] and the
//! `http_*` functions return the status and the body instead, for callers (tests,
//! benchmarks) that look at statuses themselves.

use std::io::{Read, Write};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use ureq::http::{Response, StatusCode};
use ureq::{AsSendBody, Body as RecvBody, RequestExt, SendBody};

use crate::api::ErrorBody;
use crate::ClientError;

/// Largest JSON document read from a node (job lists, status pages).
const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

/// How long a connection attempt waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request body for [`http_call`]: content type, the bytes, and their length (the
/// length is informative: a reader is sent with chunked transfer encoding).
pub type Body<'a> = (&'a str, &'a mut dyn Read, u64);

/// How a prediction request and its answer are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/msgpack` (MessagePack, field names kept).
    MessagePack,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::MessagePack => "application/msgpack",
        }
    }
}

/// A handle on one node's HTTP API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the node at `base` (`http://HOST:PORT`), sending `token` as a bearer
    /// token when given. Connects on the first request.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let rest = base
            .strip_prefix("http://")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ClientError::BadAddress {
                node: base.to_string(),
            })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // A refusal's body carries the node's message: read it, do not turn it into
            // a bare status error.
            .http_status_as_error(false)
            // Nodes are on this machine or the LAN: no proxy from the environment.
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("meshml/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            base: format!("http://{}", rest.trim_end_matches('/')),
            token,
            agent,
        })
    }

    /// The node's address, `http://HOST:PORT`.
    pub fn node(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, source: ureq::Error) -> ClientError {
        ClientError::Unreachable {
            node: self.base.clone(),
            source,
        }
    }

    fn decode(
        &self,
        what: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> ClientError {
        ClientError::Decode {
            node: self.base.clone(),
            what,
            source: Box::new(e),
        }
    }

    /// Sends one request; waits at most `wait` for the whole exchange.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: SendBody<'_>,
        wait: Duration,
    ) -> Result<Response<RecvBody>, ClientError> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(body)
            .map_err(|e| self.unreachable(ureq::Error::Http(e)))?;
        request
            .with_agent(&self.agent)
            .configure()
            .timeout_global(Some(wait))
            .run()
            .map_err(|e| self.unreachable(e))
    }

    /// The body of an answer as text.
    fn text(&self, response: &mut Response<RecvBody>) -> Result<String, ClientError> {
        response
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT_BYTES)
            .read_to_string()
            .map_err(|e| self.unreachable(e))
    }

    /// A refusal carrying the node's message (the `error` of a JSON body, else the text).
    fn refused(&self, status: StatusCode, text: &str) -> ClientError {
        let message = serde_json::from_str::<ErrorBody>(text)
            .map(|b| b.error)
            .unwrap_or_else(|_| text.trim().to_string());
        ClientError::Refused {
            node: self.base.clone(),
            status: status.as_u16(),
            message,
        }
    }

    /// Sends a request and reads a successful answer's JSON as `T`.
    fn exchange<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, SendBody<'_>)>,
        what: &'static str,
        wait: Duration,
    ) -> Result<T, ClientError> {
        let mut response = match body {
            Some((ctype, b)) => self.send(method, path, &[("content-type", ctype)], b, wait)?,
            None => self.send(method, path, &[], SendBody::none(), wait)?,
        };
        let text = self.text(&mut response)?;
        if !response.status().is_success() {
            return Err(self.refused(response.status(), &text));
        }
        serde_json::from_str(&text).map_err(|e| self.decode(what, e))
    }

    /// `GET path`, its JSON answer read as `T` (`what` names it in errors).
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
        wait: Duration,
    ) -> Result<T, ClientError> {
        self.exchange("GET", path, None, what, wait)
    }

    /// `METHOD path` with a JSON body, its JSON answer read as `T`.
    pub fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        what: &'static str,
        wait: Duration,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ClientError::Usage(format!("cannot encode the request: {e}")))?;
        let mut slice: &[u8] = &bytes;
        self.exchange(
            method,
            path,
            Some(("application/json", slice.as_body())),
            what,
            wait,
        )
    }

    /// `DELETE path`, its JSON answer read as `T`.
    pub fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
        wait: Duration,
    ) -> Result<T, ClientError> {
        self.exchange("DELETE", path, None, what, wait)
    }

    /// `POST path` without a body, its JSON answer read as `T`.
    pub fn post_empty<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
        wait: Duration,
    ) -> Result<T, ClientError> {
        self.exchange("POST", path, None, what, wait)
    }

    /// `POST path` with a file as the body, streamed from disk (never all in memory).
    pub fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &std::fs::File,
        content_type: &str,
        what: &'static str,
        wait: Duration,
    ) -> Result<T, ClientError> {
        let mut f = file;
        self.exchange("POST", path, Some((content_type, f.as_body())), what, wait)
    }

    /// `GET path`, copying a successful answer's body to `dest` as it arrives (bounded
    /// memory); returns the bytes copied.
    pub fn download(
        &self,
        path: &str,
        dest: &mut dyn Write,
        wait: Duration,
    ) -> Result<u64, ClientError> {
        match self.download_raw(path, dest, wait)? {
            Ok(n) => Ok(n),
            Err((status, text)) => Err(self.refused(status, &text)),
        }
    }

    /// [`Client::download`], a refusal returned as its status and body.
    fn download_raw(
        &self,
        path: &str,
        dest: &mut dyn Write,
        wait: Duration,
    ) -> Result<Result<u64, (StatusCode, String)>, ClientError> {
        let mut response = self.send("GET", path, &[], SendBody::none(), wait)?;
        if !response.status().is_success() {
            let text = self.text(&mut response)?;
            return Ok(Err((response.status(), text)));
        }
        let mut reader = response.body_mut().as_reader();
        let mut buf = vec![0u8; 64 << 10];
        let mut copied = 0u64;
        loop {
            // A failed read is the exchange's (the node's) fault, a failed write ours.
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(Ok(copied)),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.unreachable(ureq::Error::Io(e))),
            };
            dest.write_all(&buf[..n])
                .map_err(|e| ClientError::io("output", e))?;
            copied += n as u64;
        }
    }

    /// Online prediction: `POST /v1/models/{model}/predict` with `request` encoded as
    /// `encoding`, the answer asked for in the same encoding.
    pub fn predict(
        &self,
        model: &str,
        request: &crate::api::PredictRequest,
        encoding: Encoding,
        wait: Duration,
    ) -> Result<crate::api::PredictResponse, ClientError> {
        let bytes = match encoding {
            Encoding::Json => serde_json::to_vec(request)
                .map_err(|e| ClientError::Usage(format!("cannot encode the request: {e}")))?,
            Encoding::MessagePack => rmp_serde::to_vec_named(request)
                .map_err(|e| ClientError::Usage(format!("cannot encode the request: {e}")))?,
        };
        let ctype = encoding.content_type();
        let mut slice: &[u8] = &bytes;
        let mut response = self.send(
            "POST",
            &format!("/v1/models/{model}/predict"),
            &[("content-type", ctype), ("accept", ctype)],
            slice.as_body(),
            wait,
        )?;
        if !response.status().is_success() {
            let text = self.text(&mut response)?;
            return Err(self.refused(response.status(), &text));
        }
        match encoding {
            Encoding::Json => {
                let text = self.text(&mut response)?;
                serde_json::from_str(&text).map_err(|e| self.decode("prediction", e))
            }
            Encoding::MessagePack => {
                let bytes = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_DOCUMENT_BYTES)
                    .read_to_vec()
                    .map_err(|e| self.unreachable(e))?;
                rmp_serde::from_slice(&bytes).map_err(|e| self.decode("prediction", e))
            }
        }
    }

    /// Any request with an optional streamed body; returns the status and the body as
    /// text, whatever the status.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Body<'_>>,
        wait: Duration,
    ) -> Result<(u16, String), ClientError> {
        let mut response = match body {
            None => self.send(method, path, &[], SendBody::none(), wait)?,
            Some((ctype, reader, _len)) => self.send(
                method,
                path,
                &[("content-type", ctype)],
                SendBody::from_reader(reader),
                wait,
            )?,
        };
        let text = self.text(&mut response)?;
        Ok((response.status().as_u16(), text))
    }
}

/// `GET http://HOST:PORT/PATH` with an optional bearer token; returns the status and the
/// body, whatever the status.
pub fn http_get(base: &str, path: &str, token: Option<&str>) -> Result<(u16, String), ClientError> {
    http_call(base, "GET", path, token, None, Duration::from_secs(10))
}

/// A request with an optional streamed body; waits at most `wait` for the answer.
/// Returns the status and the body, whatever the status.
pub fn http_call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Body<'_>>,
    wait: Duration,
) -> Result<(u16, String), ClientError> {
    Client::new(base, token.map(str::to_string))?.raw(method, path, body, wait)
}

/// `GET path`, copying a 200 answer's body to `dest` as it arrives (bounded memory);
/// returns the status, the bytes copied, and for any other status the body as text.
pub fn http_download(
    base: &str,
    path: &str,
    token: Option<&str>,
    dest: &mut dyn Write,
    wait: Duration,
) -> Result<(u16, u64, String), ClientError> {
    match Client::new(base, token.map(str::to_string))?.download_raw(path, dest, wait)? {
        Ok(n) => Ok((200, n, String::new())),
        Err((status, text)) => Ok((status.as_u16(), 0, text)),
    }
}
