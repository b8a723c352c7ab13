//! Certificates made by the test (a CA, a server and a client certificate),
//! and a token server issuing real signed JWTs for Distribution's
//! `auth: token:` mode.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A test CA and the PEM files it signed, written under one directory.
pub struct Pki {
    pub ca_pem: String,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub ca_file: PathBuf,
    /// A client certificate and key (PEM, concatenated) for mutual TLS.
    pub client_identity_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    /// A fresh CA, a server certificate for 127.0.0.1/localhost, and a
    /// client certificate, in `dir`.
    pub fn generate(dir: &std::path::Path) -> Pki {
        Pki::generate_for(dir, &[])
    }

    /// Like [`Pki::generate`], the server certificate also naming
    /// `extra_dns` (e.g. `myregistry.azurecr.io`, `sts.googleapis.com`), so
    /// a client that connects to 127.0.0.1 under a cloud host name (curl's
    /// `--connect-to`, `TAGWARDEN_CONNECT_TO`) verifies it.
    pub fn generate_for(dir: &std::path::Path, extra_dns: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "tagwarden test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign CA");

        let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose, dns: &[&str]| {
            let key = KeyPair::generate().expect("leaf key");
            let names = std::iter::once("localhost")
                .chain(dns.iter().copied())
                .map(String::from)
                .collect::<Vec<_>>();
            let mut p = CertificateParams::new(names).expect("leaf params");
            p.subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &ca_cert, &ca_key).expect("sign leaf");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key_pem) =
            leaf("registry", ExtendedKeyUsagePurpose::ServerAuth, extra_dns);
        let (client_cert_pem, client_key_pem) =
            leaf("flux", ExtendedKeyUsagePurpose::ClientAuth, &[]);
        let write = |name: &str, content: &str| {
            let p = dir.join(name);
            std::fs::write(&p, content).expect("write pem");
            p
        };
        Pki {
            ca_pem: ca_cert.pem(),
            ca_file: write("ca.crt", &ca_cert.pem()),
            server_cert: write("server.crt", &server_pem),
            server_key: write("server.key", &server_key_pem),
            client_identity_pem: format!("{client_cert_pem}{client_key_pem}"),
            client_cert_pem,
            client_key_pem,
        }
    }
}

/// A token server for Distribution's `auth: token:`: checks basic
/// credentials and answers with an ES256 JWT whose `x5c` chain the registry
/// verifies against `rootcertbundle`.
pub struct TokenServer {
    pub port: u16,
    pub issuer: String,
    pub service: String,
    pub cert_file: PathBuf,
    issued: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<(String, String)>>>,
    signer: Arc<Signer>,
}

struct Signer {
    key: ring::signature::EcdsaKeyPair,
    cert_der_b64: String,
}

impl TokenServer {
    /// Starts on a free port; the signing certificate is written to `dir`.
    pub fn start(dir: &std::path::Path, user: &str, password: &str) -> TokenServer {
        TokenServer::start_users(dir, &[(user, password)])
    }

    /// Like [`TokenServer::start`], accepting each of `users` (user,
    /// password); one user may appear with several passwords.
    pub fn start_users(dir: &std::path::Path, users: &[(&str, &str)]) -> TokenServer {
        let key = KeyPair::generate().expect("token key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("token cert params");
        p.distinguished_name
            .push(DnType::CommonName, "tagwarden token issuer");
        let cert = p.self_signed(&key).expect("self-sign token cert");
        let cert_file = dir.join("token.crt");
        std::fs::write(&cert_file, cert.pem()).expect("write token cert");
        let rng = ring::rand::SystemRandom::new();
        let signer = Arc::new(Signer {
            key: ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &rng,
            )
            .expect("ring reads rcgen's PKCS#8"),
            cert_der_b64: STANDARD.encode(cert.der()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("token addr").port();
        let issued = Arc::new(AtomicUsize::new(0));
        let log: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let server = TokenServer {
            port,
            issuer: "tagwarden-testkit".into(),
            service: "tagwarden-registry".into(),
            cert_file,
            issued: issued.clone(),
            log: log.clone(),
            signer: signer.clone(),
        };
        let accepted: Vec<(String, String)> = users
            .iter()
            .map(|(u, p)| {
                (
                    format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))),
                    u.to_string(),
                )
            })
            .collect();
        let (issuer, service) = (server.issuer.clone(), server.service.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().expect("clone stream"));
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut authorized: Option<String> = None;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        authorized = accepted
                            .iter()
                            .find(|(header, _)| header == v.trim())
                            .map(|(_, user)| user.clone());
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("");
                let scope = target
                    .split_once('?')
                    .map(|(_, q)| q)
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("scope="))
                    .map(percent_decode)
                    .unwrap_or_default();
                let (status, body) = if let Some(user) = authorized {
                    issued.fetch_add(1, Ordering::SeqCst);
                    log.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((user, scope.clone()));
                    let token = signer.sign(&issuer, &service, &scope);
                    (
                        "200 OK",
                        format!(
                            r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#
                        ),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.into(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        server
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Tokens issued so far to `user` for `scope` (e.g. `repository:app:pull`).
    pub fn issued_to(&self, user: &str, scope: &str) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(u, s)| u == user && s == scope)
            .count()
    }

    /// A token for `scope` (e.g. `repository:app:pull,push`), as the server
    /// would issue it; the harness publishes with one.
    pub fn token(&self, scope: &str) -> String {
        self.signer.sign(&self.issuer, &self.service, scope)
    }
}

impl Signer {
    fn sign(&self, issuer: &str, service: &str, scope: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let mut access = Vec::new();
        let parts: Vec<&str> = scope.splitn(3, ':').collect();
        if let [kind, name, actions] = parts[..] {
            access.push(serde_json::json!({
                "type": kind, "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }));
        }
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.cert_der_b64]});
        let claims = serde_json::json!({
            "iss": issuer, "sub": "flux", "aud": service,
            "exp": now + 300, "nbf": now - 10, "iat": now - 10,
            "jti": format!("{now}-{}", scope.len()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .expect("ES256 sign");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
