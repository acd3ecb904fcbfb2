//! podman's libpod REST API over its unix socket: the one API version podkeeper speaks, and raw GETs.
//!
//! Every request podkeeper makes goes to a `/v4.0.0/libpod/…` path: the
//! typed calls of `podman-api` (create, start, list, …), the raw ones here
//! (version, info, inspect), the events stream and the recorder. podman
//! serves the libpod API from 4.0.0 up to its own version on every path in
//! that range, and podman 5 answers a path below 5.0.0 in podman 4's shapes
//! (an inspect's `StopSignal` a number, not `"SIGTERM"`). The raw decoders
//! read only the fields podkeeper needs and accept either shape, so a
//! podman that changes one of the others changes nothing here.

use std::path::Path;
use std::time::Duration;

use hyper::body::HttpBody;
use tokio::net::UnixStream;

/// The libpod API version in every path podkeeper requests.
pub const API_VERSION: &str = "4.0.0";

/// The path of libpod endpoint `rest` (which starts with `/`), e.g.
/// `path("/events")` is `/v4.0.0/libpod/events`.
pub fn path(rest: &str) -> String {
    format!("/v{API_VERSION}/libpod{rest}")
}

/// The same version for `podman-api`'s typed calls.
pub fn api_version() -> podman_api::ApiVersion {
    let mut parts = API_VERSION.split('.').map(|p| p.parse::<usize>().ok());
    let major = parts.next().flatten().unwrap_or(4);
    podman_api::ApiVersion::new(major, parts.next().flatten(), parts.next().flatten())
}

/// Why a raw call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No connection (socket missing, refused, reset).
    Unreachable(String),
    /// No whole answer within the time given.
    Timeout,
    /// podman answered with an error status: the status and its message.
    Status(u16, String),
    /// podman answered 2xx with a body podkeeper cannot read.
    Body(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => f.write_str(e),
            CallError::Timeout => f.write_str("no answer in time"),
            CallError::Status(code, msg) => write!(f, "{code}: {msg}"),
            CallError::Body(e) => write!(f, "unreadable answer: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Send `GET path` and return the response once its headers are in; an
/// error status is read whole and returned as [`CallError::Status`].
pub async fn get(socket: &Path, path: &str) -> Result<hyper::Body, CallError> {
    let (resp, _) = request(socket, path).await?;
    Ok(resp.into_body())
}

/// `GET path`: the response (a success status) and the uid of the process
/// that listens on the socket.
async fn request(
    socket: &Path,
    path: &str,
) -> Result<(hyper::Response<hyper::Body>, Option<u32>), CallError> {
    let io = UnixStream::connect(socket)
        .await
        .map_err(|e| CallError::Unreachable(format!("connect {}: {e}", socket.display())))?;
    let peer_uid = io.peer_cred().ok().map(|c| c.uid());
    let (mut sender, conn) = hyper::client::conn::handshake(io)
        .await
        .map_err(|e| CallError::Unreachable(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        // Drives the connection; ends when the body is dropped or podman hangs up.
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header("Host", "d")
        .body(hyper::Body::empty())
        .map_err(|e| CallError::Body(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| CallError::Unreachable(format!("GET {path}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok((resp, peer_uid));
    }
    let body = hyper::body::to_bytes(resp.into_body())
        .await
        .unwrap_or_default();
    // libpod errors are {"cause":…,"message":…,"response":…}.
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    Err(CallError::Status(status.as_u16(), message))
}

/// What `_ping` tells, cheaply (`/version` and `/info` run the OCI runtime
/// and conmon to ask their versions: most of a second on a busy host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// podman's version, from `Server: Libpod/<version> (linux)`.
    pub version: String,
    /// Its libpod API version (`Libpod-API-Version`).
    pub api_version: String,
    /// The uid of the process that listens on the socket: the API service,
    /// or the systemd manager that activates it.
    pub listener_uid: Option<u32>,
}

/// `GET /libpod/_ping`, within `limit`.
pub async fn ping(socket: &Path, limit: Duration) -> Result<Ping, CallError> {
    let call = async {
        let (resp, listener_uid) = request(socket, &path("/_ping")).await?;
        Ok(Ping {
            version: server_version(&resp),
            api_version: header(&resp, "Libpod-API-Version"),
            listener_uid,
        })
    };
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| CallError::Timeout)?
}

fn header(resp: &hyper::Response<hyper::Body>, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// podman's version, from the `Server: Libpod/<version> (linux)` header
/// every libpod answer carries; `unknown` when it is not there.
fn server_version(resp: &hyper::Response<hyper::Body>) -> String {
    header(resp, "Server")
        .strip_prefix("Libpod/")
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("unknown")
        .to_string()
}

/// A podman version's major and minor numbers (`5.4.2` → `(5, 4)`); `None`
/// for one that cannot be read.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The most of an answer podkeeper reads (an inspect is a few kB; a list of
/// thousands of containers a few MB).
const MAX_BODY: usize = 64 << 20;

/// `GET path`, its JSON body decoded as `T`, all within `limit`.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    socket: &Path,
    path: &str,
    limit: Duration,
) -> Result<T, CallError> {
    get_json_versioned(socket, path, limit)
        .await
        .map(|(t, _)| t)
}

/// [`get_json`], with the version of the podman that answered (its
/// `Server` header): what an answer means can depend on it.
pub async fn get_json_versioned<T: serde::de::DeserializeOwned>(
    socket: &Path,
    path: &str,
    limit: Duration,
) -> Result<(T, String), CallError> {
    let call = async {
        let (resp, _) = request(socket, path).await?;
        let version = server_version(&resp);
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| CallError::Unreachable(format!("GET {path}: {e}")))?;
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(CallError::Body(format!(
                    "GET {path}: more than {MAX_BODY} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let t = serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Body(format!("GET {path}: {e}")))?;
        Ok((t, version))
    };
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| CallError::Timeout)?
}

/// `s` made safe for a query string.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_should_carry_the_one_api_version() {
        assert_eq!(path("/events"), "/v4.0.0/libpod/events");
        assert_eq!(api_version().to_string(), API_VERSION);
    }

    #[test]
    fn query_values_should_be_percent_encoded() {
        assert_eq!(
            urlencode(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }
}
