//! A fault-injecting HTTP proxy of our own, put between a client and a real
//! server so tests can make the peer misbehave on purpose.
//!
//! Each request is read, shown to a rule, and then forwarded to the upstream
//! or answered by the fault the rule picked. One request per connection: the
//! proxy always answers `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/v2/app/tags/list?n=2`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// 0 for the first request the proxy saw.
    pub seq: usize,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_string())
        })
    }
}

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Pass to the upstream and relay its answer unchanged.
    Forward,
    /// Wait, then forward: a slow registry.
    Delay(Duration),
    /// Answer with this instead.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close the connection without answering.
    Reset,
    /// Send the head and `sent` bytes of a longer body, then go quiet for `hold`.
    Stall { sent: usize, hold: Duration },
    /// Serve the upstream's tag list in pages of at most `cap` tags (or the
    /// client's `n` when smaller), with `Link` headers, as Distribution 3 does.
    Paginate { cap: usize },
}

type Rule = dyn Fn(&Request) -> Action + Send + Sync;

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port in front of `127.0.0.1:upstream`.
    pub fn start(upstream: u16, rule: impl Fn(&Request) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let rule: Arc<Rule> = Arc::new(rule);
        {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (log, rule) = (log.clone(), rule.clone());
                    std::thread::spawn(move || serve(conn, upstream, &log, &*rule));
                }
            });
        }
        FaultProxy { port, log, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, upstream: u16, log: &Mutex<Vec<Request>>, rule: &Rule) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    // A TLS ClientHello (clients probing for HTTPS) gets the door shut: this
    // proxy speaks plain HTTP only.
    let mut first = [0u8; 1];
    if conn.peek(&mut first).map_or(true, |n| n == 0) || first[0] == 0x16 {
        return;
    }
    let Some((mut req, raw)) = read_request(&conn) else {
        return;
    };
    {
        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
        req.seq = l.len();
        l.push(req.clone());
    }
    let mut out = conn;
    match rule(&req) {
        Action::Forward => {
            if let Some(resp) = forward(upstream, &raw) {
                let _ = out.write_all(&resp);
            }
        }
        Action::Delay(wait) => {
            std::thread::sleep(wait);
            if let Some(resp) = forward(upstream, &raw) {
                let _ = out.write_all(&resp);
            }
        }
        Action::Respond {
            status,
            headers,
            body,
        } => {
            let _ = out.write_all(&response(status, &headers, &body));
        }
        Action::Reset => {
            // Linger 0 makes close() send RST, as a crashed peer or a
            // middlebox would.
            let _ = socket2::SockRef::from(&out).set_linger(Some(Duration::ZERO));
            drop(out);
            return;
        }
        Action::Stall { sent, hold } => {
            let body = vec![b' '; sent + 64];
            let mut r = response(
                200,
                &[("Content-Type".into(), "application/json".into())],
                &body,
            );
            let head_len = r.len() - body.len();
            r.truncate(head_len + sent);
            let _ = out.write_all(&r);
            let _ = out.flush();
            std::thread::sleep(hold);
        }
        Action::Paginate { cap } => {
            let _ = out.write_all(&paginate(upstream, &req, &raw, cap));
        }
    }
    let _ = out.flush();
}

/// Reads one request (head, and a `Content-Length` body); returns it parsed and raw.
fn read_request(conn: &TcpStream) -> Option<(Request, Vec<u8>)> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut raw = line.clone().into_bytes();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_string();
            // Hop-by-hop: we speak one request per connection upstream too.
            if k.eq_ignore_ascii_case("connection") {
                continue;
            }
            headers.push((k, v.trim().to_string()));
        }
        raw.extend_from_slice(h.as_bytes());
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    // A body (POSTs to cloud endpoints) goes upstream with the head.
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if length > 0 {
        let mut body = vec![0u8; length.min(16 << 20)];
        r.read_exact(&mut body).ok()?;
        raw.extend_from_slice(&body);
    }
    Some((
        Request {
            method,
            target,
            headers,
            seq: 0,
        },
        raw,
    ))
}

fn forward(upstream: u16, raw: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.write_all(raw).ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok()?;
    Some(resp)
}

fn response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status} Fault\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// Splits an upstream response into status, headers and body (the upstream
/// answers `Connection: close`, so the body runs to the end or is chunked).
fn split_response(resp: &[u8]) -> Option<tagwarden_sandbox::Response> {
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&resp[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = resp[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some((status, headers, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(nl + 2..nl + 2 + size)?);
        b = b.get(nl + 4 + size..)?;
    }
}

/// One page of the upstream's full tag list, cut at `last` and `min(n, cap)`.
fn paginate(upstream: u16, req: &Request, raw: &[u8], cap: usize) -> Vec<u8> {
    // Ask the upstream for the whole list: strip our query from the request line.
    let line_end = raw.iter().position(|&c| c == b'\n').unwrap_or(0);
    let mut upstream_req = format!("{} {} HTTP/1.1\r\n", req.method, req.path()).into_bytes();
    upstream_req.extend_from_slice(&raw[line_end + 1..]);
    let Some((status, headers, body)) = forward(upstream, &upstream_req)
        .as_deref()
        .and_then(split_response)
    else {
        return response(502, &[], b"bad upstream");
    };
    if status != 200 {
        let keep: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("content-length")
                    && !k.eq_ignore_ascii_case("connection")
                    && !k.eq_ignore_ascii_case("transfer-encoding")
            })
            .collect();
        return response(status, &keep, &body);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = v["name"].as_str().unwrap_or("").to_string();
    let mut all: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    let n = req
        .query("n")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(cap)
        .min(cap);
    let last = req.query("last");
    let rest: Vec<&String> = all
        .iter()
        .filter(|t| last.as_deref().is_none_or(|l| t.as_str() > l))
        .collect();
    let page: Vec<&String> = rest.iter().take(n).copied().collect();
    let mut hdrs = vec![("Content-Type".to_string(), "application/json".to_string())];
    if rest.len() > page.len()
        && let Some(l) = page.last()
    {
        hdrs.push((
            "Link".into(),
            format!("<{}?n={n}&last={l}>; rel=\"next\"", req.path()),
        ));
    }
    let body = serde_json::json!({ "name": name, "tags": page }).to_string();
    response(200, &hdrs, body.as_bytes())
}

/// A 200 tag-list answer for the repository `app` naming `tags`.
pub fn tag_page(tags: &[String]) -> Action {
    Action::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::json!({ "name": "app", "tags": tags })
            .to_string()
            .into_bytes(),
    }
}

/// A rule serving `tags` as every tag list; everything else goes upstream.
pub fn serve_tags(tags: Vec<String>) -> impl Fn(&Request) -> Action + Send + Sync {
    move |r: &Request| {
        if r.path().ends_with("/tags/list") {
            tag_page(&tags)
        } else {
            Action::Forward
        }
    }
}

/// What a hostile registry lists: two good tags around a YAML line
/// separator, a path, a 200-character tag, a bad first character and a
/// terminal escape sequence.
pub fn hostile_tags() -> Vec<String> {
    [
        "1.0.0",
        "1.0\u{2028}evil",
        "../x",
        &"a".repeat(200),
        "-bad",
        "x\x1b[31m",
        "2.0.0",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect()
}
