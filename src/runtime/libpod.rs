//! podman's libpod REST API over its unix socket: the one API version podkeeper speaks, raw GETs, and the one way every call is timed and its failure classified.
//!
//! Every request podkeeper makes goes to a `/v4.0.0/libpod/…` path: the
//! typed calls of `podman-api` (create, start, list, …), the raw ones here
//! (version, info, inspect), the events stream and the recorder. podman
//! serves the libpod API from 4.0.0 up to its own version on every path in
//! that range, and podman 5 answers a path below 5.0.0 in podman 4's shapes
//! (an inspect's `StopSignal` a number, not `"SIGTERM"`). The raw decoders
//! read only the fields podkeeper needs and accept either shape, so a
//! podman that changes one of the others changes nothing here.
//!
//! Two clients serve the API. `podman-api` builds the bodies of the calls
//! that send one (create with its spec, pull's progress stream, stop, …).
//! It cannot serve the raw ones: its typed models decode the *whole*
//! answer, so podman 5's inspect (a string where 4 has a number, a list
//! where 4 has a string) fails to decode, it exposes no response headers
//! (`Server` is how an answer tells its podman version, `_ping` is headers
//! only), and no peer credentials (the socket's listener uid). Whichever
//! client serves a call, it goes through [`within`] (the one timeout) and
//! its failure becomes a [`CallError`] from the error's type, never its
//! text: [`from_api`] for the crate's errors, [`from_hyper`] for hyper's,
//! the HTTP status for an answer.

use std::future::Future;
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
    /// podman answered with a body podkeeper cannot read.
    Body(String),
    /// The request could not be made (a bad URI or options): a bug here.
    Request(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => f.write_str(e),
            CallError::Timeout => f.write_str("no answer in time"),
            CallError::Status(code, msg) => write!(f, "{code}: {msg}"),
            CallError::Body(e) => write!(f, "unreadable answer: {e}"),
            CallError::Request(e) => write!(f, "bad request: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// `call` within `limit`: the one timeout every podman call, raw or typed, runs under.
pub async fn within<T, E: Into<CallError>>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(CallError::Timeout),
    }
}

/// A hyper failure: no connection (no socket, refused, reset, closed
/// mid-answer), or an answer that is not HTTP: no podman there either way.
pub fn from_hyper(what: &str, e: &hyper::Error) -> CallError {
    CallError::Unreachable(format!("{what}: {}", with_source(e)))
}

/// An I/O failure on the socket: no connection, whatever its kind.
fn from_io(what: &str, e: &std::io::Error) -> CallError {
    CallError::Unreachable(format!("{what}: {e}"))
}

/// `e` and what caused it (hyper's "error trying to connect" alone does not
/// say that the socket is missing).
fn with_source(e: &dyn std::error::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A `podman-api` failure in the same terms as a raw call's, by its type.
pub fn from_api(e: podman_api::Error) -> CallError {
    use podman_api::conn::Error as Conn;
    use podman_api::Error as Api;
    match e {
        // The crate joins the body's message and cause with ": ".
        Api::Fault { code, message } | Api::Error(Conn::Fault { code, message }) => {
            CallError::Status(code.as_u16(), message.trim().to_string())
        }
        Api::IO(e) | Api::Error(Conn::IO(e)) => from_io("podman", &e),
        Api::Error(Conn::Hyper(e)) => from_hyper("podman", &e),
        // An answer that came whole but cannot be read.
        Api::SerdeJsonError(e) | Api::Error(Conn::SerdeJsonError(e)) => {
            CallError::Body(e.to_string())
        }
        e @ (Api::InvalidResponse(_)
        | Api::ServerError(_)
        | Api::Error(Conn::Encoding(_) | Conn::ConnectionNotUpgraded)) => {
            CallError::Body(e.to_string())
        }
        // What podkeeper asked could not be sent (a bad URI, options):
        // podman never saw it, and it is no connection failure either.
        other => CallError::Request(other.to_string()),
    }
}

impl From<podman_api::Error> for CallError {
    fn from(e: podman_api::Error) -> Self {
        from_api(e)
    }
}

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
    send(socket, hyper::Method::GET, path, None).await
}

/// `method path` with `body` (raw bytes, as podman takes a secret's
/// content), all within `limit`: the answer's body, read whole (bounded).
pub async fn call(
    socket: &Path,
    method: hyper::Method,
    path: &str,
    body: Vec<u8>,
    limit: Duration,
) -> Result<Vec<u8>, CallError> {
    let call = async {
        // Not a form: podman would read a form body as its parameters.
        let body = Some(("application/octet-stream", body));
        let (resp, _) = send(socket, method, path, body).await?;
        read_body(path, resp.into_body()).await
    };
    within(limit, call).await
}

/// `method path` with an optional body and its content type: the response
/// (a success status) and the uid of the process that listens on the
/// socket; an error status is read whole and returned as [`CallError::Status`].
async fn send(
    socket: &Path,
    method: hyper::Method,
    path: &str,
    body: Option<(&'static str, Vec<u8>)>,
) -> Result<(hyper::Response<hyper::Body>, Option<u32>), CallError> {
    let io = UnixStream::connect(socket)
        .await
        .map_err(|e| from_io(&format!("connect {}", socket.display()), &e))?;
    let peer_uid = io.peer_cred().ok().map(|c| c.uid());
    let (mut sender, conn) = hyper::client::conn::handshake(io)
        .await
        .map_err(|e| from_hyper("handshake", &e))?;
    tokio::spawn(async move {
        // Drives the connection; ends when the body is dropped or podman hangs up.
        let _ = conn.await;
    });
    let what = format!("{method} {path}");
    let builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "d");
    let req = match body {
        Some((content_type, body)) => builder
            .header("Content-Type", content_type)
            .body(hyper::Body::from(body)),
        None => builder.body(hyper::Body::empty()),
    }
    .map_err(|e| CallError::Request(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| from_hyper(&what, &e))?;
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

/// `POST path` with no body, within `limit`; the answer's body is not
/// read. An error status (304: nothing to do) is [`CallError::Status`].
pub async fn post(socket: &Path, path: &str, limit: Duration) -> Result<(), CallError> {
    within(limit, send(socket, hyper::Method::POST, path, None))
        .await
        .map(|_| ())
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
        Ok::<_, CallError>(Ping {
            version: server_version(&resp),
            api_version: header(&resp, "Libpod-API-Version"),
            listener_uid,
        })
    };
    within(limit, call).await
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
        let t = read_json(resp.into_body(), &format!("GET {path}")).await?;
        Ok::<_, CallError>((t, version))
    };
    within(limit, call).await
}

/// `POST path` with `body` as JSON, the answer's JSON decoded as `T`, all
/// within `limit` (a create's spec: see `podman/create.rs` for why it is
/// built here rather than by `podman-api`).
pub async fn post_json<T: serde::de::DeserializeOwned>(
    socket: &Path,
    path: &str,
    body: &serde_json::Value,
    limit: Duration,
) -> Result<T, CallError> {
    let call = async {
        let json = serde_json::to_vec(body).map_err(|e| CallError::Request(e.to_string()))?;
        let (resp, _) = send(
            socket,
            hyper::Method::POST,
            path,
            Some(("application/json", json)),
        )
        .await?;
        read_json(resp.into_body(), &format!("POST {path}")).await
    };
    within(limit, call).await
}

/// Whether `GET path` answers a success status (podman's `…/exists`
/// endpoints: 204 yes, 404 no), within `limit`.
pub async fn exists(socket: &Path, path: &str, limit: Duration) -> Result<bool, CallError> {
    let call = async {
        match request(socket, path).await {
            Ok(_) => Ok(true),
            Err(CallError::Status(404, _)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    within(limit, call).await
}

/// `DELETE path` (its answer's body is not read): a remove.
pub async fn delete(socket: &Path, path: &str) -> Result<(), CallError> {
    send(socket, hyper::Method::DELETE, path, None)
        .await
        .map(|_| ())
}

/// A body read whole, at most [`MAX_BODY`] bytes, and decoded as `T`.
async fn read_json<T: serde::de::DeserializeOwned>(
    body: hyper::Body,
    what: &str,
) -> Result<T, CallError> {
    let bytes = read_body(what, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| CallError::Body(format!("{what}: {e}")))
}

/// An answer's body, whole, at most [`MAX_BODY`] bytes.
async fn read_body(what: &str, mut body: hyper::Body) -> Result<Vec<u8>, CallError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| from_hyper(what, &e))?;
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(CallError::Body(format!(
                "{what}: more than {MAX_BODY} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
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
