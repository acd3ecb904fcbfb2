//! The control socket: an owner-only unix socket where `status` and `metrics` ask the running daemon, one line in, one reply out.
//!
//! The socket is bound, made 0600, and only then listens: nobody can
//! connect while it has the umask's mode. Every client is served on its own
//! task, off the reactor's, with a bounded request (one line, 1 KiB), a
//! deadline for it and for the whole exchange, and a bound on clients at
//! once (see [`super::accept`]: a client still sending its request makes
//! room for a new one; when every slot is answering, the newcomer is told
//! [`BUSY`] and [`super::client`] asks again). A peer of another uid
//! (SO_PEERCRED) is refused even if the mode were loosened, and logged once
//! a minute per uid ([`super::refusals`]). A client that sends nothing,
//! garbage or a flood, or leaves mid-reply, costs at most its task.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::accept::{self, Bounds, Request};
use super::refusals::{self, Peer, Refusals};
use super::state::Shared;

/// The longest request line accepted.
pub const MAX_REQUEST: usize = 1024;
/// How long a client may take to send its request.
pub const READ_LIMIT: Duration = Duration::from_secs(2);
/// How long one whole exchange may take (a client that stops reading).
pub const CLIENT_LIMIT: Duration = Duration::from_secs(10);
/// Clients served at once; more are closed at once.
pub const MAX_CLIENTS: usize = 16;
/// The longest reply a client accepts.
pub const MAX_REPLY: u64 = 64 * 1024 * 1024;
/// How a reply saying "every slot is answering, try again" starts.
pub const BUSY: &str = "error: busy";
const BUSY_LINE: &[u8] = b"error: busy: every client slot is taken; try again\n";
/// How often the counts of refused clients are looked at, to be logged
/// once their minute is over.
const REFUSALS_EVERY: Duration = Duration::from_secs(10);

/// `/run/podkeeper/control.sock` for root, else
/// `$XDG_RUNTIME_DIR/podkeeper/control.sock` (`/run/user/UID` when unset).
pub fn default_path() -> PathBuf {
    if crate::host::is_root() {
        return PathBuf::from("/run/podkeeper/control.sock");
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", crate::host::euid())));
    runtime.join("podkeeper/control.sock")
}

/// A bound control socket; the file is removed when it is dropped (if it
/// is still the one bound here).
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    ino: u64,
}

impl ControlSocket {
    /// Bind `path`: its directory is created 0700 when missing; a socket
    /// file no daemon listens on (left by a killed one) is replaced; a live
    /// one, a symlink or anything not a socket is refused.
    pub fn bind(path: &Path) -> anyhow::Result<Self> {
        let path = crate::host::absolute(path);
        let dir = path
            .parent()
            .context("the control socket path has no directory")?;
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is not a directory", dir.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        }
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            Ok(m) if m.file_type().is_symlink() => {
                bail!("{} is a symlink: refused, never followed", path.display())
            }
            Ok(m) if !m.file_type().is_socket() => {
                bail!(
                    "{} exists and is not a socket: refused, left as it is",
                    path.display()
                )
            }
            Ok(_) => match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => bail!(
                    "another podkeeper is listening on {}: stop it, or give this one another --control-socket",
                    path.display()
                ),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    // Left by a daemon that died: nobody listens.
                    std::fs::remove_file(&path).with_context(|| {
                        format!("cannot remove the stale socket {}", path.display())
                    })?;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot probe {}", path.display()))
                }
            },
        }
        let listener = bind_owner_only(&path)?;
        let ino = std::fs::symlink_metadata(&path)
            .map(|m| m.ino())
            .unwrap_or(0);
        Ok(ControlSocket {
            listener,
            path,
            ino,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serve clients until `cancel` fires.
    pub async fn serve(self, shared: Arc<Shared>, cancel: CancellationToken) {
        let bounds = Bounds {
            what: "control socket",
            max: MAX_CLIENTS,
            head_limit: READ_LIMIT,
            limit: CLIENT_LIMIT,
            busy: Some(BUSY_LINE),
        };
        let refused = Arc::new(Mutex::new(Refusals::default()));
        let counts = tokio::spawn(log_refusal_counts(refused.clone(), cancel.clone()));
        accept::serve(&self.listener, bounds, cancel, move |stream, request| {
            let (shared, refused) = (shared.clone(), refused.clone());
            async move { serve_client(stream, &shared, &refused, request).await }
        })
        .await;
        let _ = counts.await;
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Only our own file: another daemon may have taken the path since.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// bind(2), chmod 0600, then listen(2): a connect before the listen is
/// refused, so no client ever reaches the socket with a looser mode.
fn bind_owner_only(path: &Path) -> anyhow::Result<UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)
        .context("cannot create a unix socket")?;
    let addr = SockAddr::unix(path).with_context(|| format!("{}", path.display()))?;
    socket
        .bind(&addr)
        .with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    socket
        .listen(MAX_CLIENTS as i32)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    socket.set_nonblocking(true)?;
    let std: std::os::unix::net::UnixListener = socket.into();
    Ok(UnixListener::from_std(std)?)
}

/// Whether a peer may ask: the daemon's own user, or root.
fn allowed(peer_uid: u32) -> bool {
    peer_uid == crate::host::euid() || peer_uid == 0
}

/// Note one refusal of `peer`: whether it is the first of its minute (to
/// be logged in full). A count over is logged here.
fn first_refusal(refused: &Mutex<Refusals>, peer: Peer) -> bool {
    let note = refused
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .refused(peer, tokio::time::Instant::now());
    match note {
        refusals::Note::First => true,
        refusals::Note::Counted => false,
        refusals::Note::Summary(n) => {
            log_refusal_count(peer, n);
            false
        }
    }
}

fn log_refusal_count(peer: Peer, n: u64) {
    tracing::warn!("control socket: refused {n} more requests from {peer} in the last minute");
}

/// Log the counts of refusals whose minute is over, until `cancel`.
async fn log_refusal_counts(refused: Arc<Mutex<Refusals>>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(REFUSALS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let over = refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush(tokio::time::Instant::now());
        for (peer, n) in over {
            log_refusal_count(peer, n);
        }
    }
}

async fn serve_client(
    stream: UnixStream,
    shared: &Shared,
    refused: &Mutex<Refusals>,
    request_in: Request,
) {
    let refusal = match stream.peer_cred() {
        Ok(cred) if allowed(cred.uid()) => None,
        Ok(cred) => {
            if first_refusal(refused, Peer::Uid(cred.uid())) {
                tracing::warn!(
                    uid = cred.uid(),
                    pid = cred.pid(),
                    "control socket: refused a client of another user (more from this uid \
                     in the next minute are counted, not logged)"
                );
            }
            Some(format!(
                "error: refused: uid {} may not ask this daemon (its owner's only)\n",
                cred.uid()
            ))
        }
        Err(e) => {
            if first_refusal(refused, Peer::Unknown) {
                tracing::warn!(error = %e, "control socket: cannot tell who connected; refused");
            }
            Some("error: refused: cannot tell who connected\n".to_string())
        }
    };
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let request = match tokio::time::timeout(READ_LIMIT, reader.read_until(b'\n', &mut line)).await
    {
        Err(_) => return, // Sent nothing (or no whole line) in time.
        Ok(Err(_)) => return,
        Ok(Ok(_)) if line.len() > MAX_REQUEST => None,
        Ok(Ok(_)) => std::str::from_utf8(&line).ok().map(str::trim),
    };
    request_in.arrived();
    // Refused only now, its request read: a close with unread data would
    // reset the connection before the client reads why.
    let reply = match (refusal, request) {
        (Some(refusal), _) => refusal,
        (None, Some("status")) => match serde_json::to_string(&shared.status()) {
            Ok(json) => json + "\n",
            Err(e) => format!("error: {e}\n"),
        },
        (None, Some("metrics")) => shared.metrics_text(),
        (None, Some(r)) if r.starts_with("retry ") => {
            retry(shared, r["retry ".len()..].trim()).await
        }
        (None, None) => format!("error: request longer than {MAX_REQUEST} bytes or not UTF-8\n"),
        (None, Some(_)) => {
            "error: unknown request (allowed: status, metrics, retry APP)\n".to_string()
        }
    };
    // A client gone mid-reply is its own loss.
    let _ = write.write_all(reply.as_bytes()).await;
    let _ = write.shutdown().await;
}

/// `retry APP`: a declared app's failed spec is forgotten and the app
/// reconciled now, by the reactor (a trigger: it owns the memory); the
/// reply says what the board knew of it. An unknown app is an error.
async fn retry(shared: &Shared, app: &str) -> String {
    let failed = {
        let board = shared.board();
        match board.apps.get(app) {
            None => {
                let app = crate::manifest::excerpt::excerpt(app, 64);
                return format!(
                    "error: retry: no app {app:?} is declared (`podkeeper status` lists them)\n"
                );
            }
            Some(row) => match &row.update {
                Some(super::state::UpdateRow::RolledBack(f)) => Some(f.failure.spec_hash.clone()),
                _ => None,
            },
        }
    };
    let Some(tx) = shared.triggers.get() else {
        return "error: retry: this daemon's reactor takes no requests\n".to_string();
    };
    let sent = tokio::time::timeout(
        READ_LIMIT,
        tx.send(crate::trigger::Trigger::Retry(app.to_string())),
    )
    .await;
    match (sent, failed) {
        (Ok(Ok(())), Some(spec)) => format!(
            "{app}: failed spec {} forgotten; trying the declared spec again now\n",
            super::state::updates::short(&spec)
        ),
        (Ok(Ok(())), None) => {
            format!("{app}: no failed spec remembered; reconciling it now\n")
        }
        (Ok(Err(_)), _) => "error: retry: the daemon is shutting down\n".to_string(),
        (Err(_), _) => "error: retry: the daemon is too busy to take it; try again\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::ops::client::{ask, AskError};

    fn served(dir: &Path) -> (PathBuf, Arc<Shared>, CancellationToken) {
        let path = dir.join("run/podkeeper/control.sock");
        let socket = ControlSocket::bind(&path).unwrap();
        let shared = Shared::new();
        let cancel = CancellationToken::new();
        tokio::spawn(socket.serve(shared.clone(), cancel.clone()));
        (path, shared, cancel)
    }

    #[tokio::test]
    async fn the_socket_should_be_owner_only_in_a_new_owner_only_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, cancel) = served(dir.path());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let reply = ask(&path, "status").await.unwrap();
        let status: crate::ops::state::Status = serde_json::from_str(&reply).unwrap();
        assert_eq!(status.pid, std::process::id());
        assert!(ask(&path, "metrics").await.unwrap().ends_with("# EOF\n"));
        let e = ask(&path, "stop").await.unwrap_err().to_string();
        assert!(
            e.contains("unknown request (allowed: status, metrics, retry APP)"),
            "{e}"
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_live_socket_should_be_refused_a_stale_one_replaced_and_others_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, cancel) = served(dir.path());
        let e = ControlSocket::bind(&path).err().unwrap().to_string();
        assert!(e.starts_with("another podkeeper is listening on"), "{e}");
        // A daemon killed: its file stays, nobody listens.
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(matches!(
            ask(&stale, "status").await,
            Err(AskError::NotRunning(_))
        ));
        let again = ControlSocket::bind(&stale).unwrap();
        assert_eq!(again.path(), stale);
        let file = dir.path().join("file.sock");
        std::fs::write(&file, "keep me").unwrap();
        let e = ControlSocket::bind(&file).err().unwrap().to_string();
        assert!(e.contains("is not a socket: refused"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = ControlSocket::bind(&link).err().unwrap().to_string();
        assert!(e.contains("is a symlink: refused"), "{e}");
        cancel.cancel();
    }

    #[tokio::test]
    async fn silent_garbage_and_flooding_clients_should_not_keep_others_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, cancel) = served(dir.path());
        // One says nothing and stays; one sends a megabyte without a newline;
        // one leaves at once; one sends garbage bytes.
        let silent = UnixStream::connect(&path).await.unwrap();
        let mut flood = UnixStream::connect(&path).await.unwrap();
        let flooding = tokio::spawn(async move {
            let _ = flood.write_all(&vec![b'x'; 1 << 20]).await;
            let mut reply = String::new();
            let _ = flood.read_to_string(&mut reply).await;
            reply
        });
        drop(UnixStream::connect(&path).await.unwrap());
        let mut garbage = UnixStream::connect(&path).await.unwrap();
        garbage.write_all(b"\xff\xfe\x00status\n").await.unwrap();
        let started = std::time::Instant::now();
        ask(&path, "status").await.unwrap();
        assert!(started.elapsed() < READ_LIMIT, "{:?}", started.elapsed());
        let reply = flooding.await.unwrap();
        assert!(
            reply.is_empty() || reply.starts_with("error: request longer than 1024 bytes"),
            "{reply}"
        );
        let mut reply = String::new();
        garbage.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("error: "), "{reply}");
        // The silent one is closed after the read limit, unanswered.
        let mut silent = silent;
        let mut reply = String::new();
        silent.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, "");
        cancel.cancel();
    }

    /// Keeps one connection open and silent, a new one as soon as the
    /// daemon closes it, until `stop`.
    async fn hold(path: PathBuf, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let Ok(mut s) = UnixStream::connect(&path).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let mut sink = Vec::new();
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = s.read_to_end(&mut sink) => {}
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_should_be_answered_while_silent_clients_hold_every_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, cancel) = served(dir.path());
        let stop = CancellationToken::new();
        let holders: Vec<_> = (0..MAX_CLIENTS)
            .map(|_| tokio::spawn(hold(path.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..5 {
            let reply = ask(&path, "status").await;
            assert!(reply.is_ok(), "{}", reply.unwrap_err());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stop.cancel();
        for h in holders {
            let _ = tokio::time::timeout(Duration::from_secs(3), h).await;
        }
        cancel.cancel();
    }

    #[tokio::test]
    async fn retry_should_reach_the_reactor_for_a_declared_app_and_refuse_an_unknown_one() {
        let dir = tempfile::tempdir().unwrap();
        let (path, shared, cancel) = served(dir.path());
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        shared.triggers.set(tx).unwrap();
        shared
            .board()
            .apps
            .insert("web".into(), crate::ops::state::AppRow::default());
        let reply = ask(&path, "retry web").await.unwrap();
        assert_eq!(
            reply,
            "web: no failed spec remembered; reconciling it now\n"
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            crate::trigger::Trigger::Retry("web".into())
        );
        // Rolled back: the reply names the spec it forgets.
        shared.board().apps.get_mut("web").unwrap().update = Some(
            crate::ops::state::UpdateRow::RolledBack(crate::observe::RememberedFailure {
                failure: crate::reconcile::updates::Failure {
                    spec_hash: "0123456789abcdef".into(),
                    why: "unhealthy".into(),
                    exit_code: None,
                    log_tail: String::new(),
                },
                at: jiff::Timestamp::now(),
            }),
        );
        let reply = ask(&path, "retry web").await.unwrap();
        assert_eq!(
            reply,
            "web: failed spec 0123456789ab forgotten; trying the declared spec again now\n"
        );
        assert!(rx.try_recv().is_ok());
        let e = ask(&path, "retry nope").await.unwrap_err().to_string();
        assert!(
            e.ends_with(": retry: no app \"nope\" is declared (`podkeeper status` lists them)"),
            "{e}"
        );
        assert!(rx.try_recv().is_err(), "nothing sent for an unknown app");
        // A daemon going down: its reactor no longer reads.
        drop(rx);
        let e = ask(&path, "retry web").await.unwrap_err().to_string();
        assert!(e.ends_with(": retry: the daemon is shutting down"), "{e}");
        cancel.cancel();
    }

    #[test]
    fn peers_should_be_this_user_or_root() {
        assert!(allowed(crate::host::euid()));
        assert!(allowed(0));
        assert!(!allowed(65534) || crate::host::euid() == 65534);
    }
}
