//! The HTTP side of a login: one client per login (connection overrides,
//! extra roots and the repository's proxy applied), capped bodies, and
//! error messages made of the service's own error fields with every secret
//! of the request scrubbed out.

use crate::CloudError;
use std::time::Duration;
use tagwarden_registry::Network;

/// Response bodies of identity endpoints are small; anything larger is refused.
const MAX_BODY: usize = 1 << 20;

pub(crate) struct Http {
    client: reqwest::Client,
}

/// A response that came back 2xx.
pub(crate) struct Ok2xx {
    pub body: Vec<u8>,
}

impl Http {
    pub fn new(network: &Network, proxy: Option<&str>) -> Result<Http, CloudError> {
        let cfg = |e: String| CloudError::Config(e);
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .referer(false)
            .user_agent(concat!("tagwarden/", env!("CARGO_PKG_VERSION")))
            // Identity endpoints answer where they are asked; a redirect
            // would carry a token somewhere else.
            .redirect(reqwest::redirect::Policy::none());
        b = match proxy {
            Some(p) => b.proxy(reqwest::Proxy::all(p).map_err(|e| cfg(e.to_string()))?),
            None => b.no_proxy(),
        };
        b = network.apply(b).map_err(|e| cfg(e.to_string()))?;
        Ok(Http {
            client: b.build().map_err(|e| cfg(e.to_string()))?,
        })
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    pub fn put(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.put(url)
    }

    /// Sends `req`; a non-2xx answer becomes an error naming `step` with the
    /// service's reason. `secrets` are scrubbed from every message.
    pub async fn send(
        &self,
        step: &'static str,
        req: reqwest::RequestBuilder,
        secrets: &[&str],
    ) -> Result<Ok2xx, CloudError> {
        let mut resp = req.send().await.map_err(|e| CloudError::Unreachable {
            step,
            message: scrub(&chain(&e), secrets),
        })?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > MAX_BODY {
                        return Err(CloudError::Malformed {
                            step,
                            message: format!("response exceeds {MAX_BODY} bytes"),
                        });
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(CloudError::Unreachable {
                        step,
                        message: scrub(&chain(&e), secrets),
                    });
                }
            }
        }
        if (200..300).contains(&status) {
            return Ok(Ok2xx { body });
        }
        let message = scrub(&reason(&body), secrets);
        if status >= 500 || status == 429 {
            Err(CloudError::Unreachable {
                step,
                message: format!("HTTP {status}: {message}"),
            })
        } else {
            Err(CloudError::Refused {
                step,
                status,
                message,
            })
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// The service's reason from the error shapes the clouds use: OAuth
/// (`error`, `error_description`), Google (`error.message`), AWS JSON
/// (`__type`, `message`) and XML (`<Code>`, `<Message>`), Distribution
/// (`errors[].message`); else the start of the body.
fn reason(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
        let parts: Vec<String> = [
            s("/error"),
            s("/error_description"),
            s("/error/status"),
            s("/error/message"),
            s("/__type").map(|t| t.rsplit('#').next().unwrap_or(&t).to_string()),
            s("/message").or_else(|| s("/Message")),
            s("/errors/0/code"),
            s("/errors/0/message"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !parts.is_empty() {
            return clip(&parts.join(": "));
        }
    }
    let code = xml_value(&text, "Code");
    let message = xml_value(&text, "Message");
    if code.is_some() || message.is_some() {
        return clip(
            &[code, message]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
        );
    }
    clip(text.trim())
}

fn clip(s: &str) -> String {
    let s: String = s.chars().take(300).collect();
    tagwarden_registry::printable(&s)
}

/// Replaces each secret (and its URL-encoded form) with `<redacted>`.
pub(crate) fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut m = message.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        m = m.replace(s, "<redacted>");
        let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        if encoded != *s {
            m = m.replace(&encoded, "<redacted>");
        }
    }
    m
}

/// The text of the first `<tag>…</tag>`, entities decoded.
pub(crate) fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    let raw = &xml[start..start + len];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Parses a JSON body, naming `step` when it is not JSON.
pub(crate) fn json(step: &'static str, body: &[u8]) -> Result<serde_json::Value, CloudError> {
    serde_json::from_slice(body).map_err(|e| CloudError::Malformed {
        step,
        message: format!("not JSON: {e}"),
    })
}

/// A required string field of a JSON answer.
pub(crate) fn field<'v>(
    step: &'static str,
    v: &'v serde_json::Value,
    pointer: &str,
) -> Result<&'v str, CloudError> {
    v.pointer(pointer)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CloudError::Malformed {
            step,
            message: format!("no '{}' in the answer", pointer.trim_start_matches('/')),
        })
}

/// Reads a token file (projected ServiceAccount tokens rotate, so each
/// login reads it again), naming the variable that points at it.
pub(crate) fn read_token_file(var: &str, path: &str) -> Result<String, CloudError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CloudError::Config(format!("{var} '{path}': cannot read: {e}")))?;
    if meta.len() > 64 * 1024 {
        return Err(CloudError::Config(format!(
            "{var} '{path}': larger than 64 KiB; expected a token"
        )));
    }
    let s = std::fs::read_to_string(path)
        .map_err(|e| CloudError::Config(format!("{var} '{path}': cannot read: {e}")))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(CloudError::Config(format!(
            "{var} '{path}': the file is empty"
        )));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_each_cloud_error_shape_with_secrets_scrubbed() {
        let table: [(&[u8], &str); 6] = [
            (
                br#"{"error":"invalid_grant","error_description":"bad subject token"}"#,
                "invalid_grant: bad subject token",
            ),
            (
                br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
                "PERMISSION_DENIED: Permission denied",
            ),
            (
                br#"{"__type":"com.amazon#AccessDeniedException","message":"no"}"#,
                "AccessDeniedException: no",
            ),
            (
                b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized &amp; gone</Message></Error></ErrorResponse>",
                "AccessDenied: Not authorized & gone",
            ),
            (
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"nope"}]}"#,
                "UNAUTHORIZED: nope",
            ),
            (b"plain \x1b[31mtext", "plain \\u{1b}[31mtext"),
        ];
        for (body, want) in table {
            assert_eq!(reason(body), want);
        }
        assert_eq!(
            scrub("token s3cr3t/x+y and s3cr3t%2Fx%2By", &["s3cr3t/x+y"]),
            "token <redacted> and <redacted>"
        );
    }
}
