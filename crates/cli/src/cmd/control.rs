//! A minimal HTTP/1.1 client for the daemon's control socket
//! (`<state-dir>/daemon.sock`): one request per connection, `Connection:
//! close`, so the answer ends where the stream does.

use anyhow::{Context as _, Result, bail};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Control {
    path: PathBuf,
}

/// Longest answer read (the object list of a large cluster fits easily).
const MAX_ANSWER: u64 = 64 << 20;

impl Control {
    /// The daemon at `path` when it answers `/healthz` there.
    pub fn connect(path: &Path) -> Option<Control> {
        let c = Control {
            path: path.to_path_buf(),
        };
        let (status, _) = c.request("GET", "/healthz", Duration::from_secs(3)).ok()?;
        (status == 200).then_some(c)
    }

    /// (status, body) of one request.
    pub fn request(&self, method: &str, target: &str, timeout: Duration) -> Result<(u16, Vec<u8>)> {
        let shown = self.path.display();
        let mut s = UnixStream::connect(&self.path)
            .with_context(|| format!("connecting to the daemon at {shown}"))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: tagwarden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.take(MAX_ANSWER)
            .read_to_end(&mut raw)
            .with_context(|| format!("reading the daemon's answer on {shown}"))?;
        parse(&raw).with_context(|| format!("the daemon's answer on {shown}"))
    }
}

fn parse(raw: &[u8]) -> Result<(u16, Vec<u8>)> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("no complete HTTP head");
    };
    let head = std::str::from_utf8(&raw[..end]).context("HTTP head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no HTTP status line")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) if n <= body.len() => body[..n].to_vec(),
            Some(n) => bail!("body cut short: {} of {n} bytes", body.len()),
            None => body.to_vec(),
        }
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&body[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size '{size_text}'"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            bail!("chunk cut short");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_answers() {
        let (s, b) = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").expect("parse");
        assert_eq!((s, b.as_slice()), (200, &b"ok"[..]));
        let (s, b) = parse(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nres\r\n5\r\nource\r\n0\r\n\r\n",
        )
        .expect("parse");
        assert_eq!((s, b.as_slice()), (409, &b"resource"[..]));
        let e = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nok").expect_err("short");
        assert_eq!(e.to_string(), "body cut short: 2 of 9 bytes");
    }
}
