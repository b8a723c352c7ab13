//! Real Git servers for tests: smart HTTP through `git http-backend` behind
//! a small server of ours with basic or bearer auth, over plain HTTP or TLS.
//! Bare repositories (file://) come from tagwarden-sandbox.

use crate::Pki;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Smart HTTP over `git http-backend` for the repositories under a folder,
/// with basic auth.
pub struct GitHttpServer {
    pub port: u16,
    scheme: &'static str,
}

/// The one `Authorization` header a server accepts, and its 401 challenge.
#[derive(Clone)]
struct Auth {
    expected: String,
    challenge: &'static str,
}

impl GitHttpServer {
    /// Serves `root` (holding `NAME.git` folders) at `http://127.0.0.1:PORT/NAME.git`.
    pub fn start(root: &Path, user: &str, password: &str) -> GitHttpServer {
        Self::spawn(root, basic(user, password), None)
    }

    /// Like [`GitHttpServer::start`] but only `Authorization: Bearer TOKEN` gets in.
    pub fn start_bearer(root: &Path, token: &str) -> GitHttpServer {
        let auth = Auth {
            expected: format!("Bearer {token}"),
            challenge: "Bearer realm=\"git\"",
        };
        Self::spawn(root, auth, None)
    }

    /// Like [`GitHttpServer::start`] over TLS with `pki`'s server certificate
    /// (for 127.0.0.1 and localhost): `https://127.0.0.1:PORT/NAME.git`.
    pub fn start_tls(root: &Path, user: &str, password: &str, pki: &Pki) -> GitHttpServer {
        Self::spawn(root, basic(user, password), Some(tls_config(pki)))
    }

    fn spawn(root: &Path, auth: Auth, tls: Option<Arc<rustls::ServerConfig>>) -> GitHttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind git http");
        let port = listener.local_addr().expect("addr").port();
        let root = root.to_path_buf();
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (root, auth, tls) = (root.clone(), auth.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    None => serve_cgi(conn, &root, &auth),
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        // The handshake runs on first read; a client refusing
                        // our certificate just ends the connection.
                        serve_cgi(rustls::StreamOwned::new(session, conn), &root, &auth);
                    }
                });
            }
        });
        GitHttpServer { port, scheme }
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}://127.0.0.1:{}/{name}", self.scheme, self.port)
    }
}

fn basic(user: &str, password: &str) -> Auth {
    Auth {
        expected: format!("Basic {}", crate::base64(&format!("{user}:{password}"))),
        challenge: "Basic realm=\"git\"",
    }
}

pub(crate) fn tls_config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .expect("read server.crt")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse server.crt");
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("read server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server cert and key match");
    Arc::new(config)
}

fn serve_cgi<S: Read + Write>(conn: S, root: &Path, auth: &Auth) {
    // One stream for both ways (a TLS session cannot be cloned); writes go
    // through get_mut, bypassing only the read buffer.
    let mut reader = BufReader::new(conn);
    // Keep-alive: libgit2 sends several requests on one connection.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return;
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body.resize(len, 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let out = reader.get_mut();
        if header("authorization").as_deref() != Some(auth.expected.as_str()) {
            let refusal = format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {}\r\nContent-Length: 0\r\n\r\n",
                auth.challenge
            );
            if out
                .write_all(refusal.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let reply = run_cgi(root, &method, path, query, &headers, &body);
        let mut head = format!("HTTP/1.1 {} CGI\r\n", reply.status);
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
        let cgi_body = &reply.body;
        // TLS buffers records: flush or the client waits forever.
        if out.write_all(head.as_bytes()).is_err()
            || out.write_all(cgi_body).is_err()
            || out.flush().is_err()
        {
            return;
        }
    }
}

/// Runs `git http-backend` for one request on the repositories under
/// `root` (`path` is `/NAME.git/...`) and parses its CGI answer. Pushes are
/// allowed: REMOTE_USER is set, as after a successful login.
pub(crate) fn run_cgi(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> crate::standin::Reply {
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let failed = |why: &str| crate::standin::Reply::text(500, "text/plain", why);
    let child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "tester")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return failed("cannot run git http-backend");
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body);
    }
    let Ok(output) = child.wait_with_output() else {
        return failed("git http-backend did not finish");
    };
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return failed("git http-backend answered no CGI head");
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut reply = crate::standin::Reply {
        status: 200,
        headers: Vec::new(),
        body: raw[end + sep..].to_vec(),
    };
    for l in head.lines() {
        if let Some(s) = l.strip_prefix("Status:") {
            reply.status = s
                .trim()
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
        } else if let Some((k, v)) = l.split_once(':') {
            reply
                .headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    reply
}
