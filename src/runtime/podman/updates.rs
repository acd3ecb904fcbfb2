//! The calls an update makes of podman beyond create, start and stop: renaming a container, and the end of its log.

use super::*;

impl PodmanRuntime {
    pub(super) async fn rename(&self, name: &str, new_name: &str) -> RuntimeResult<()> {
        let path = libpod::path(&format!(
            "/containers/{}/rename?name={}",
            libpod::urlencode(name),
            libpod::urlencode(new_name)
        ));
        let limit = self.timeouts.quick;
        match libpod::call(&self.socket, hyper::Method::POST, &path, Vec::new(), limit).await {
            Ok(_) => Ok(()),
            // libpod answers 409 when the new name is taken.
            Err(CallError::Status(409, m)) => Err(RuntimeError::NameInUse(m)),
            Err(e) => Err(from_call("rename", limit, e)),
        }
    }

    pub(super) async fn logs(&self, name: &str, max_bytes: usize) -> RuntimeResult<String> {
        // `tail` bounds what podman sends; the frames are cut to
        // `max_bytes` after.
        let path = libpod::path(&format!(
            "/containers/{}/logs?stdout=true&stderr=true&tail={LOG_LINES}",
            libpod::urlencode(name)
        ));
        let limit = self.timeouts.quick;
        let body = libpod::call(&self.socket, hyper::Method::GET, &path, Vec::new(), limit)
            .await
            .map_err(|e| from_call("logs", limit, e))?;
        let text = demux(&body);
        Ok(super::super::tail_of(&text, max_bytes).to_string())
    }
}

/// How many lines of a log are asked for.
const LOG_LINES: u32 = 40;

/// The text of a (non-terminal) container's log stream: frames of an
/// 8-byte header (stream, 0, 0, 0, big-endian length) and the payload. A
/// stream that does not start with such a header is taken as plain text
/// (a container with a terminal).
fn demux(body: &[u8]) -> String {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while rest.len() >= 8 && rest[0] <= 2 && rest[1..4] == [0, 0, 0] {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_frames_should_be_joined_and_plain_text_kept() {
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 6];
        body.extend_from_slice(b"hello\n");
        body.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 5]);
        body.extend_from_slice(b"oops\n");
        assert_eq!(demux(&body), "hello\noops\n");
        assert_eq!(demux(b"plain text\n"), "plain text\n");
        // A frame cut short by the bound keeps what arrived.
        assert_eq!(demux(&[1, 0, 0, 0, 0, 0, 0, 9, b'a', b'b']), "ab");
    }

    #[test]
    fn a_tail_should_start_at_a_line() {
        let t = crate::runtime::tail_of;
        assert_eq!(t("one\ntwo\nthree\n", 100), "one\ntwo\nthree\n");
        assert_eq!(t("one\ntwo\nthree\n", 9), "three\n");
        assert_eq!(t("ééééé", 3), "é");
    }
}
