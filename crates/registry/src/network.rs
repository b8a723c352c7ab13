//! Process-wide network settings from the environment, applied to every
//! HTTP client of the process (registries and cloud identity endpoints):
//!
//! - `TAGWARDEN_CONNECT_TO`: comma-separated `HOST:PORT:CONNECT_HOST:CONNECT_PORT`
//!   entries in curl's `--connect-to` syntax. Requests to `HOST` connect to
//!   `CONNECT_HOST:CONNECT_PORT` instead, while TLS names, SNI and the
//!   `Host` header stay `HOST` (private endpoints, split-horizon DNS, tests).
//! - `SSL_CERT_FILE`: a PEM bundle trusted in addition to the built-in roots.

use std::net::{SocketAddr, ToSocketAddrs};

/// One `TAGWARDEN_CONNECT_TO` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub connect_host: String,
    pub connect_port: u16,
}

/// The name of the connection override variable.
pub const CONNECT_TO_VAR: &str = "TAGWARDEN_CONNECT_TO";

/// Splits `HOST:PORT:CONNECT_HOST:CONNECT_PORT`; IPv6 addresses go in brackets.
fn fields(entry: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = entry;
    for i in 0..4 {
        let (field, next) = if let Some(r) = rest.strip_prefix('[') {
            let (inside, after) = r.split_once(']')?;
            (inside, after)
        } else {
            match rest.find(':') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, ""),
            }
        };
        out.push(field.to_string());
        rest = match (i, next.strip_prefix(':')) {
            (3, _) if next.is_empty() => "",
            (3, _) => return None,
            (_, Some(r)) => r,
            (_, None) => return None,
        };
    }
    Some(out)
}

impl ConnectTo {
    /// Parses one entry; the message says what was expected.
    pub fn parse(entry: &str) -> Result<ConnectTo, String> {
        let bad = |why: &str| {
            format!(
                "{CONNECT_TO_VAR} entry '{}': {why}; expected HOST:PORT:CONNECT_HOST:CONNECT_PORT",
                crate::printable(entry)
            )
        };
        let f = fields(entry.trim()).ok_or_else(|| bad("not four ':'-separated fields"))?;
        let port = |s: &str, what: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("{what} '{}' is not a port", crate::printable(s))))
        };
        let host_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        };
        if !host_ok(&f[0]) || !host_ok(&f[2]) {
            return Err(bad("a host is empty or not a host name or address"));
        }
        let c = ConnectTo {
            host: f[0].to_ascii_lowercase(),
            port: port(&f[1], "PORT")?,
            connect_host: f[2].clone(),
            connect_port: port(&f[3], "CONNECT_PORT")?,
        };
        // The connection layer keeps our port only for a URL on its scheme's
        // default port; an explicit port in the URL wins over the override.
        if !matches!(c.port, 443 | 80) && c.connect_port != c.port {
            return Err(bad(
                "only ports 443 and 80 can be moved to another port; an explicit port keeps its number",
            ));
        }
        Ok(c)
    }

    /// Every entry of a comma-separated list; one host at most once.
    pub fn parse_list(list: &str) -> Result<Vec<ConnectTo>, String> {
        let mut out: Vec<ConnectTo> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let c = ConnectTo::parse(entry)?;
            if out.iter().any(|o| o.host == c.host) {
                return Err(format!(
                    "{CONNECT_TO_VAR}: host '{}' is given twice; one entry per host",
                    c.host
                ));
            }
            out.push(c);
        }
        Ok(out)
    }

    /// The socket address to connect to.
    pub fn address(&self) -> Result<SocketAddr, String> {
        (self.connect_host.as_str(), self.connect_port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                format!(
                    "{CONNECT_TO_VAR}: cannot resolve '{}' for '{}'",
                    self.connect_host, self.host
                )
            })
    }
}

/// What the environment asks of every client.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub connect_to: Vec<ConnectTo>,
    /// Extra trusted roots (PEM), from `SSL_CERT_FILE`.
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Network {
    /// Reads `TAGWARDEN_CONNECT_TO` and `SSL_CERT_FILE` through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Network, String> {
        let connect_to = match var(CONNECT_TO_VAR) {
            Some(v) => ConnectTo::parse_list(&v)?,
            None => Vec::new(),
        };
        for c in &connect_to {
            c.address()?;
        }
        let extra_roots_pem = match var("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            Some(path) => Some(
                std::fs::read(&path)
                    .map_err(|e| format!("SSL_CERT_FILE '{path}': cannot read: {e}"))?,
            ),
            None => None,
        };
        Ok(Network {
            connect_to,
            extra_roots_pem,
        })
    }

    /// The process's settings, read once.
    pub fn process() -> Result<&'static Network, crate::RegistryError> {
        static NETWORK: std::sync::OnceLock<Result<Network, String>> = std::sync::OnceLock::new();
        NETWORK
            .get_or_init(|| Network::from_vars(|k| std::env::var(k).ok()))
            .as_ref()
            .map_err(|e| crate::RegistryError::Config(e.clone()))
    }

    /// Applies the overrides and extra roots to a reqwest client builder.
    #[cfg(feature = "http")]
    pub fn apply(
        &self,
        mut b: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, crate::RegistryError> {
        for c in &self.connect_to {
            let addr = c.address().map_err(crate::RegistryError::Config)?;
            b = b.resolve(&c.host, addr);
        }
        if let Some(pem) = &self.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| crate::RegistryError::Config(format!("SSL_CERT_FILE: {e}")))?;
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_entries_as_curl_writes_them() {
        let c =
            ConnectTo::parse("123456789012.dkr.ecr.me-central-1.amazonaws.com:443:127.0.0.1:5443")
                .expect("valid");
        assert_eq!(
            c,
            ConnectTo {
                host: "123456789012.dkr.ecr.me-central-1.amazonaws.com".into(),
                port: 443,
                connect_host: "127.0.0.1".into(),
                connect_port: 5443,
            }
        );
        assert_eq!(c.address().expect("ip").to_string(), "127.0.0.1:5443");
        let v6 = ConnectTo::parse("r.example:443:[::1]:8443").expect("v6");
        assert_eq!(v6.connect_host, "::1");
        assert_eq!(v6.address().expect("ip").to_string(), "[::1]:8443");
        let list =
            ConnectTo::parse_list(" a.example:443:127.0.0.1:1 , b.example:5000:127.0.0.1:5000,")
                .expect("list");
        assert_eq!(list.len(), 2);
        let table = [
            ("a.example:443:127.0.0.1", "not four"),
            ("a.example:443:127.0.0.1:1:2", "not four"),
            (":443:127.0.0.1:1", "empty"),
            ("a.example:https:127.0.0.1:1", "PORT 'https' is not a port"),
            (
                "a.example:443:127.0.0.1:0",
                "CONNECT_PORT '0' is not a port",
            ),
            ("a.example:5000:127.0.0.1:6000", "only ports 443 and 80"),
            ("a/b:443:127.0.0.1:1", "not a host"),
        ];
        for (entry, want) in table {
            let e = ConnectTo::parse(entry).expect_err(entry);
            assert!(
                e.contains(want) && e.contains("TAGWARDEN_CONNECT_TO entry"),
                "{entry}: {e}"
            );
        }
        let e = ConnectTo::parse_list("a.example:443:127.0.0.1:1,A.example:80:127.0.0.1:2")
            .expect_err("twice");
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn network_from_vars() {
        let n = Network::from_vars(|_| None).expect("empty");
        assert!(n.connect_to.is_empty() && n.extra_roots_pem.is_none());
        let e =
            Network::from_vars(|k| (k == "SSL_CERT_FILE").then(|| "/nonexistent/ca.pem".into()))
                .expect_err("missing file");
        assert!(
            e.starts_with("SSL_CERT_FILE '/nonexistent/ca.pem': cannot read"),
            "{e}"
        );
    }
}
