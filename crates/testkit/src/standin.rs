//! The small HTTP server the cloud identity stand-ins share: one request per
//! connection (always answered `Connection: close`), plain HTTP or TLS, every
//! request logged for assertions, stopped on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One request a stand-in received, as tests assert on it.
#[derive(Debug, Clone)]
pub struct CloudRequest {
    pub method: String,
    /// Path and query as sent, e.g. `/metadata/identity/oauth2/token?api-version=2018-02-01`.
    pub target: String,
    /// Names as sent (compare with [`CloudRequest::header`], case-insensitive).
    pub headers: Vec<(String, String)>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
    /// The decoded fields of an `application/x-www-form-urlencoded` body, in order.
    pub form: Vec<(String, String)>,
    /// When the request was read, for asserting back-off between retries.
    pub at: std::time::Instant,
}

impl CloudRequest {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A decoded query parameter (the first of that name).
    pub fn query(&self, key: &str) -> Option<String> {
        parse_pairs(self.target.split_once('?')?.1)
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A decoded form field (the first of that name).
    pub fn form_value(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
pub(crate) enum Outcome {
    Reply(Reply),
    /// Relay the request to `127.0.0.1:port` over plain HTTP and its answer back.
    Forward(u16),
}

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, content_type: &str, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Handlers see the raw body too (Git packs are not text).
type Handler = dyn Fn(&CloudRequest, &[u8]) -> Outcome + Send + Sync;

/// A running server; stops accepting when dropped.
pub(crate) struct Server {
    pub port: u16,
    log: Arc<Mutex<Vec<CloudRequest>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&CloudRequest) -> Outcome + Send + Sync + 'static,
    ) -> Server {
        Self::start_raw(tls, move |req, _| handler(req))
    }

    /// Like [`Server::start`], the handler also getting the body's bytes.
    pub fn start_raw(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&CloudRequest, &[u8]) -> Outcome + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        let port = listener.local_addr().expect("stand-in addr").port();
        let log: Arc<Mutex<Vec<CloudRequest>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let (log, handler, tls) = (log.clone(), handler.clone(), tls.clone());
                    std::thread::spawn(move || match tls {
                        None => serve(&mut { conn }, &log, &*handler),
                        Some(config) => {
                            let Ok(session) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            // The handshake runs on first read; a client refusing
                            // our certificate just ends the connection.
                            let mut stream = rustls::StreamOwned::new(session, conn);
                            serve(&mut stream, &log, &*handler);
                            // A clean TLS end, so strict clients see no truncation.
                            stream.conn.send_close_notify();
                            let _ = stream.flush();
                        }
                    });
                }
            });
        }
        Server { port, log, stop }
    }

    pub fn requests(&self) -> Vec<CloudRequest> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve<S: Read + Write>(conn: &mut S, log: &Mutex<Vec<CloudRequest>>, handler: &Handler) {
    let Some((req, body)) = read_request(conn) else {
        return;
    };
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(req.clone());
    let bytes = match handler(&req, &body) {
        Outcome::Reply(r) => response(&r),
        Outcome::Forward(port) => forward(port, &req, &body).unwrap_or_else(|| {
            response(&Reply::text(
                502,
                "text/plain",
                "stand-in: upstream unreachable",
            ))
        }),
    };
    // TLS buffers records: flush or the client waits.
    let _ = conn.write_all(&bytes);
    let _ = conn.flush();
}

/// Reads one request: head, then a `Content-Length` or chunked body.
fn read_request<S: Read>(conn: &mut S) -> Option<(CloudRequest, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        while body.len() < len {
            let n = conn.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(len);
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(b) = dechunk(&body) {
                body = b;
                break;
            }
            let n = conn.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let is_form = header("content-type").is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim() == "application/x-www-form-urlencoded")
    });
    let text = String::from_utf8_lossy(&body).into_owned();
    let form = if is_form {
        parse_pairs(&text)
    } else {
        Vec::new()
    };
    Some((
        CloudRequest {
            method,
            target,
            headers,
            body: text,
            form,
            at: std::time::Instant::now(),
        },
        body,
    ))
}

/// The whole body of a complete chunked encoding, or None while incomplete.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&b[..nl]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(nl + 2..nl + 2 + size)?);
        b = b.get(nl + 4 + size..)?;
    }
}

/// `a=b&c=d`, percent- and plus-decoded.
pub(crate) fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (crate::pki::percent_decode(k), crate::pki::percent_decode(v))
        })
        .collect()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        412 => "Precondition Failed",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn response(r: &Reply) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(&r.body);
    out
}

/// Sends the request to the upstream as received (one request per
/// connection there too) and returns its raw answer.
fn forward(port: u16, req: &CloudRequest, body: &[u8]) -> Option<Vec<u8>> {
    let mut raw = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        // Hop-by-hop, and the body is re-framed by length below.
        if [
            "connection",
            "transfer-encoding",
            "content-length",
            "keep-alive",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || req.header("content-length").is_some() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = up.set_read_timeout(Some(Duration::from_secs(30)));
    up.write_all(raw.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok()?;
    (!resp.is_empty()).then_some(resp)
}

/// What a federated token (a Kubernetes ServiceAccount token, a CI OIDC
/// token) must be for a stand-in to accept it.
#[derive(Debug, Clone)]
pub enum Federated {
    /// Exactly this token.
    Token(String),
    /// Any JWT-shaped token whose payload has this `iss`, this `sub`, an
    /// `aud` (string or array) holding `audience`, and an `exp` not past, as
    /// a federated identity credential or a workload identity provider
    /// matches one. The signature is not checked.
    Claims {
        issuer: String,
        subject: String,
        audience: String,
    },
}

/// Why a presented token does not match a [`Federated`].
pub(crate) enum Mismatch {
    /// Not three base64url parts with a JSON payload.
    Malformed,
    /// A JWT with other claims (or another token): which claim differs
    /// (`iss`, `aud`, `sub`, or `token` for an exact token), and the
    /// presented `iss`, `sub` and `aud` (empty when absent).
    Claims {
        claim: &'static str,
        issuer: String,
        subject: String,
        audience: String,
    },
    Expired,
}

impl Federated {
    pub(crate) fn check(&self, token: &str) -> Result<(), Mismatch> {
        let claims = jwt_claims(token);
        let mismatch = |claim: &'static str| {
            let c = claims.clone().unwrap_or_default();
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            Mismatch::Claims {
                claim,
                issuer: text(&c["iss"]),
                subject: text(&c["sub"]),
                audience: text(&c["aud"]),
            }
        };
        match self {
            Federated::Token(t) if t == token => Ok(()),
            Federated::Token(_) => match claims {
                None => Err(Mismatch::Malformed),
                Some(_) => Err(mismatch("token")),
            },
            Federated::Claims {
                issuer,
                subject,
                audience,
            } => {
                let Some(c) = &claims else {
                    return Err(Mismatch::Malformed);
                };
                let aud_ok = match &c["aud"] {
                    serde_json::Value::String(a) => a == audience,
                    serde_json::Value::Array(a) => a.iter().any(|x| x == audience.as_str()),
                    _ => false,
                };
                if c["iss"] != issuer.as_str() {
                    return Err(mismatch("iss"));
                }
                if !aud_ok {
                    return Err(mismatch("aud"));
                }
                if c["sub"] != subject.as_str() {
                    return Err(mismatch("sub"));
                }
                if c["exp"].as_u64().is_some_and(|e| e <= now_secs()) {
                    return Err(Mismatch::Expired);
                }
                Ok(())
            }
        }
    }
}

/// The JSON payload of a JWT-shaped token, if it is one.
pub(crate) fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts[..] else {
        return None;
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .filter(serde_json::Value::is_object)
}

/// A JWT-shaped token (`RS256` header, these claims, a made-up signature)
/// for federated-token files and assertions in tests; nothing verifies it.
pub fn jwt_shaped(claims: &serde_json::Value) -> String {
    jwt_with_header(
        &serde_json::json!({"alg": "RS256", "kid": "testkit", "typ": "JWT"}),
        claims,
    )
}

pub(crate) fn jwt_with_header(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use base64::Engine;
    use sha2::Digest as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let payload = claims.to_string();
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.as_bytes()),
        b64(&sha2::Sha256::digest(payload.as_bytes()))
    )
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `(year, month, day, hour, minute, second)` in UTC of a Unix time.
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date (era arithmetic).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3_600, rem % 3_600 / 60, rem % 60)
}

/// `2026-12-02T03:04:05Z`, as Google's JSON timestamps.
pub(crate) fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-12-02 03:04:05Z`, as Entra's error timestamps.
pub(crate) fn entra_time(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_180_470), "2026-12-02T03:01:10Z");
        assert_eq!(super::entra_time(1_796_180_470), "2026-12-02 03:01:10Z");
    }
}
