//! Output never stalls the keeper, on every stack: with `--debug`'s standard output a full pipe nobody reads (`podkeeper run --debug | sleep 1000`), a killed container is still restarted in the usual time.

mod common;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// A pipe: (read end, write end), both blocking, as a shell's `|` makes them.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array we own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Fill the pipe until the kernel takes no more. Through a second, non-blocking
/// open of it: O_NONBLOCK belongs to an open file, so podkeeper's own stays
/// blocking, as a shell's pipe is.
fn fill(write_end: &OwnedFd) -> usize {
    let mut other = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(format!("/proc/self/fd/{}", write_end.as_raw_fd()))
        .expect("reopen the pipe's write end");
    let chunk = [b'x'; 4096];
    let mut n = 0;
    loop {
        match other.write(&chunk) {
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return n,
            Err(e) => panic!("fill the pipe: {e}"),
        }
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

#[test]
fn a_full_stdout_pipe_nobody_reads_should_not_stop_restarts() {
    let _g = serial();
    let apps = Apps::new("e2e-out-");
    apps.write("e2e-out-web", TRAP_CMD);
    let (_read_end, write_end) = pipe();
    let stdout = File::from(write_end.try_clone().expect("dup the write end"));
    let mut child = user_command(podkeeper_bin())
        .arg("run")
        .arg("--apps")
        .arg(apps.path())
        .arg("--socket")
        .arg(socket())
        .arg("--no-control-socket")
        .arg("--debug")
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start podkeeper");
    let _kill = KillOnDrop(&mut child);
    wait_until(T, "the app running", || is_running("e2e-out-web"));
    // Let the start-up's lines settle, then fill what is left of the pipe.
    std::thread::sleep(Duration::from_secs(2));
    let filled = fill(&write_end);
    println!("pipe filled with {filled} more bytes; nobody reads it");

    let mut took = Vec::new();
    for _ in 0..3 {
        took.push(kill_and_wait_within("e2e-out-web", Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(800));
    }
    println!("kill -9 -> running, stdout a full pipe: {took:?}");
    // The usual time: an exit grace and podman's collection at most.
    for t in &took {
        assert!(*t < Duration::from_secs(15), "restarts took {took:?}");
    }
}

/// `kill -9` of the app's process, then how long until it runs again
/// (panics, with the time waited, when it does not within `limit`).
fn kill_and_wait_within(app: &str, limit: Duration) -> Duration {
    let before = inspect(app).expect("container");
    let t0 = Instant::now();
    kill9(before.pid);
    while t0.elapsed() < limit {
        if inspect(app).is_some_and(|c| c.status == "running" && c.started_at != before.started_at)
        {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{app} not started again within {limit:?} of its kill (stdout a full pipe)");
}

/// The daemon is killed when the test ends, however it ends.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
