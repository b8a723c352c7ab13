//! The HTTP client: auth negotiation, retries, body caps and the per-host
//! request budget, over reqwest.

use crate::manifest;
use crate::port::Platform;
use crate::tags::{self, TagList, is_valid_tag, printable};
use crate::{ClientOptions, Credentials, MANIFEST_TYPES, RegistryError, auth};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tagwarden_api::image::ImageRef;
use tokio::sync::Semaphore;

/// Registry HTTP requests made by this process, by status code (0 for a
/// connection that gave no response), for the daemon's metrics.
pub fn request_counts() -> Vec<(u16, u64)> {
    requests()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect()
}

fn requests() -> &'static Mutex<std::collections::BTreeMap<u16, u64>> {
    static REQUESTS: OnceLock<Mutex<std::collections::BTreeMap<u16, u64>>> = OnceLock::new();
    REQUESTS.get_or_init(Default::default)
}

fn count_request(status: u16) {
    *requests()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(status)
        .or_insert(0) += 1;
}

/// One registry client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    opts: Arc<ClientOptions>,
    tokens: Arc<Mutex<TokenMap>>,
    schemes: Arc<Mutex<HashMap<String, &'static str>>>,
}

fn limiter(registry: &str, permits: usize) -> Arc<Semaphore> {
    static LIMITS: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let map = LIMITS.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(registry.to_string())
        .or_insert_with(|| Arc::new(Semaphore::new(permits.max(1))))
        .clone()
}

enum Auth<'a> {
    None,
    Basic(&'a Credentials),
    Bearer(String),
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, RegistryError> {
        Client::with_tokens(opts, Arc::default(), crate::Network::process()?)
    }

    /// A client whose bearer tokens live in `tokens`: the pool hands every
    /// client the same map, so clients that differ only in timeouts or TLS
    /// settings still fetch one token per registry, scope and credentials.
    pub(crate) fn with_tokens(
        opts: ClientOptions,
        tokens: Arc<Mutex<TokenMap>>,
        network: &crate::Network,
    ) -> Result<Client, RegistryError> {
        let cfg = |e: reqwest::Error| RegistryError::Config(e.to_string());
        // No overall per-request timeout: the operation's deadline bounds
        // everything; a stalled attempt fails on the read timeout and is retried.
        let stall = opts
            .stall_timeout
            .min(opts.timeout)
            .max(Duration::from_millis(1));
        // A redirect target (blob stores, CDNs) learns nothing of where we came
        // from; reqwest drops Authorization when the host or port changes.
        let mut b = reqwest::Client::builder()
            .connect_timeout(stall)
            .read_timeout(stall)
            .referer(false)
            .user_agent(concat!("tagwarden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(ca) = &opts.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(ca).map_err(cfg)? {
                b = b.add_root_certificate(cert);
            }
        }
        if let Some(id) = &opts.identity_pem {
            b = b.identity(reqwest::Identity::from_pem(id).map_err(cfg)?);
        }
        b = match &opts.proxy {
            Some(p) => b.proxy(reqwest::Proxy::all(p).map_err(cfg)?),
            None => b.no_proxy(),
        };
        b = network.apply(b)?;
        Ok(Client {
            http: b.build().map_err(cfg)?,
            opts: Arc::new(opts),
            tokens,
            schemes: Arc::default(),
        })
    }

    /// One client and its clones share connections (and options).
    #[cfg(test)]
    pub(crate) fn same_as(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.opts, &other.opts)
    }

    /// `scheme://host` for the registry. Loopback, private-network and
    /// `insecure` registries may speak either, as with go-containerregistry;
    /// a probe finds out which, remembered per client.
    async fn base(&self, image: &ImageRef) -> Result<String, RegistryError> {
        let host = if image.registry == tagwarden_api::image::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &image.registry
        };
        if !(self.opts.insecure || image.defaults_to_http()) {
            return Ok(format!("https://{host}"));
        }
        let known = self
            .schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .copied();
        let scheme = match known {
            Some(s) => s,
            None => {
                let s = self.probe_scheme(image, host).await?;
                self.schemes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.to_string(), s);
                s
            }
        };
        Ok(format!("{scheme}://{host}"))
    }

    async fn probe_scheme(
        &self,
        image: &ImageRef,
        host: &str,
    ) -> Result<&'static str, RegistryError> {
        // A host without a port means two ports (80, 443), where plain HTTP
        // often only redirects: try HTTPS first there, as go-containerregistry
        // does. With a port, one port speaks one of the two, so the order
        // changes only the cost: plain first, as local registries mostly are.
        // A TLS server answers a plain request with 400; only a registry's
        // answer counts.
        if !host.contains(':') {
            if self
                .http
                .get(format!("https://{host}/v2/"))
                .send()
                .await
                .is_ok()
            {
                return Ok("https");
            }
            return match self.http.get(format!("http://{host}/v2/")).send().await {
                Ok(r) if matches!(r.status().as_u16(), 200 | 401 | 403) => Ok("http"),
                Ok(r) => Err(RegistryError::Connect {
                    registry: image.registry.clone(),
                    message: format!(
                        "neither HTTPS nor plain HTTP answered as a registry (HTTP {})",
                        r.status().as_u16()
                    ),
                }),
                Err(e) => Err(RegistryError::Connect {
                    registry: image.registry.clone(),
                    message: error_chain(&e),
                }),
            };
        }
        let plain = self.http.get(format!("http://{host}/v2/")).send().await;
        if let Ok(r) = &plain
            && matches!(r.status().as_u16(), 200 | 401 | 403)
        {
            return Ok("http");
        }
        match self.http.get(format!("https://{host}/v2/")).send().await {
            Ok(_) => Ok("https"),
            Err(e) => Err(RegistryError::Connect {
                registry: image.registry.clone(),
                message: error_chain(&e),
            }),
        }
    }

    /// Every valid tag of the repository, in the order the registry lists them.
    pub async fn list_tags(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
    ) -> Result<Vec<String>, RegistryError> {
        Ok(self.scan_tags(image, creds).await?.tags)
    }

    /// The repository's tag list as a scan keeps it: tags outside the OCI
    /// grammar dropped and counted, the total capped at `max_tags` tags and
    /// `max_tag_bytes` bytes, everything within `timeout`.
    pub async fn scan_tags(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
    ) -> Result<TagList, RegistryError> {
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let list = self
            .within(
                image,
                "scan",
                deadline,
                self.tag_pages(image, creds, deadline),
            )
            .await?;
        if list.invalid > 0 {
            tracing::warn!(
                registry = %image.registry,
                repository = %image.repository,
                invalid = list.invalid,
                examples = %list.examples_line(),
                "skipped tags outside the OCI tag grammar"
            );
        }
        Ok(list)
    }

    /// Runs `op` until `deadline`, then gives up with a timeout error.
    async fn within<T>(
        &self,
        image: &ImageRef,
        operation: &'static str,
        deadline: tokio::time::Instant,
        op: impl std::future::Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        match tokio::time::timeout_at(deadline, op).await {
            Ok(r) => r,
            Err(_) => Err(RegistryError::Timeout {
                registry: image.registry.clone(),
                operation,
                after: tagwarden_api::duration::format(self.opts.timeout),
            }),
        }
    }

    async fn tag_pages(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        deadline: tokio::time::Instant,
    ) -> Result<TagList, RegistryError> {
        let base = self.base(image).await?;
        // A registry may cap the page size below what we ask for (and send a Link
        // anyway): the first page with a Link tells us the real page size.
        let mut n = self.opts.page_size;
        let mut url = format!("{base}/v2/{}/tags/list?n={n}", image.repository);
        let mut acc = tags::Collect::new(self.opts.max_tags);
        let mut seen_last: Vec<String> = Vec::new();
        let mut bytes = 0usize;
        for page_no in 0..self.opts.max_pages {
            // Each body is parsed and dropped before the next is fetched; the
            // total budget shrinks the per-response cap as pages arrive.
            let budget = self.opts.max_tag_bytes.saturating_sub(bytes);
            let limit = self.opts.max_body.min(budget);
            let resp = match self
                .get(image, creds, Method::GET, &url, None, limit, deadline)
                .await
            {
                Err(RegistryError::TooLarge { .. }) if limit < self.opts.max_body => {
                    return Err(self.tag_bytes_error(image));
                }
                r => r?,
            };
            bytes += resp.body.len();
            let mark = acc.mark();
            let mut de = serde_json::Deserializer::from_slice(&resp.body);
            let parsed = serde::de::DeserializeSeed::deserialize(tags::Page(&mut acc), &mut de)
                .and_then(|()| de.end());
            if acc.over {
                return Err(RegistryError::TooManyTags {
                    registry: image.registry.clone(),
                    repository: image.repository.clone(),
                    limit: self.opts.max_tags,
                });
            }
            parsed.map_err(|e| RegistryError::Malformed {
                registry: image.registry.clone(),
                url: url.clone(),
                message: printable(&e.to_string()),
            })?;
            let page_len = acc.seen - mark.3;
            let next = resp
                .headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let last = match acc.last_invalid.take() {
                Some(t) => t,
                None if page_len > 0 => acc.list.tags.last().cloned().unwrap_or_default(),
                None => return Ok(acc.list),
            };
            // A `last` seen before means the registry loops its Link header:
            // this page repeats one we have.
            if seen_last.contains(&last) {
                acc.undo(mark);
                tracing::warn!(registry = %image.registry, url = %printable(&url), "registry repeats a tag page; stopping");
                return Ok(acc.list);
            }
            if page_no == 0 && next.is_some() {
                n = n.min(page_len);
            }
            let Some(next) = next else {
                return Ok(acc.list);
            };
            if page_len < n {
                return Ok(acc.list);
            }
            seen_last.push(last);
            // Resolved as a URL (a bare `@host/…` must not become userinfo) and
            // kept on the registry's origin: the next request carries credentials.
            let on_registry = url::Url::parse(&base)
                .and_then(|b| b.join(&next).map(|u| (b, u)))
                .ok()
                .filter(|(b, u)| b.origin() == u.origin());
            let Some((_, next_url)) = on_registry else {
                return Err(RegistryError::Malformed {
                    registry: image.registry.clone(),
                    url: url.clone(),
                    message: format!(
                        "the Link header's next page '{}' is not on this registry; credentials are sent only to {base}",
                        printable(&next)
                    ),
                });
            };
            url = next_url.to_string();
        }
        Err(RegistryError::TooManyPages {
            registry: image.registry.clone(),
            limit: self.opts.max_pages,
        })
    }

    fn tag_bytes_error(&self, image: &ImageRef) -> RegistryError {
        RegistryError::TagListTooLarge {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
            limit: self.opts.max_tag_bytes,
        }
    }

    /// The platforms `reference` (a tag or a digest) is published for: each
    /// entry of an index (attestations left out), or the single image's from
    /// its config blob. Both bodies are capped at `max_body`.
    pub async fn platforms(
        &self,
        image: &ImageRef,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<Vec<Platform>, RegistryError> {
        check_reference(reference)?;
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let op = async {
            let base = self.base(image).await?;
            let (url, config) = match self
                .manifest_at(image, &base, reference, creds, deadline)
                .await?
            {
                (_, manifest::Manifest::Index { platforms, .. }) => return Ok(platforms),
                (url, manifest::Manifest::Image { config }) => (url, config),
            };
            let (blob_url, blob) = self
                .config_blob(image, &base, &url, &config, creds, deadline)
                .await?;
            let platform =
                manifest::parse_config(&blob).map_err(|m| malformed(image, &blob_url, m))?;
            Ok(vec![platform])
        };
        self.within(image, "platform lookup", deadline, op).await
    }

    /// The `created` time of `reference`'s image config: of the image, or
    /// of an index's first platform image. `None` when it states none.
    pub async fn created(
        &self,
        image: &ImageRef,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<Option<std::time::SystemTime>, RegistryError> {
        check_reference(reference)?;
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let op = async {
            let base = self.base(image).await?;
            let mut reference = reference.to_string();
            // An index, then its first image: one level, as registries nest.
            for _ in 0..2 {
                let (url, config) = match self
                    .manifest_at(image, &base, &reference, creds, deadline)
                    .await?
                {
                    (_, manifest::Manifest::Index { first: Some(d), .. }) => {
                        reference = d;
                        continue;
                    }
                    (_, manifest::Manifest::Index { first: None, .. }) => return Ok(None),
                    (url, manifest::Manifest::Image { config }) => (url, config),
                };
                let (blob_url, blob) = self
                    .config_blob(image, &base, &url, &config, creds, deadline)
                    .await?;
                return manifest::parse_created(&blob).map_err(|m| malformed(image, &blob_url, m));
            }
            Ok(None)
        };
        self.within(image, "created lookup", deadline, op).await
    }

    /// The manifest at `reference`, parsed, and its URL (for messages).
    async fn manifest_at(
        &self,
        image: &ImageRef,
        base: &str,
        reference: &str,
        creds: Option<&Credentials>,
        deadline: tokio::time::Instant,
    ) -> Result<(String, manifest::Manifest), RegistryError> {
        let url = format!("{base}/v2/{}/manifests/{reference}", image.repository);
        let resp = self
            .get(
                image,
                creds,
                Method::GET,
                &url,
                Some(MANIFEST_TYPES),
                self.opts.max_body,
                deadline,
            )
            .await
            .map_err(|e| match e {
                RegistryError::NotFound { .. } => RegistryError::ManifestNotFound {
                    registry: image.registry.clone(),
                    repository: image.repository.clone(),
                    reference: reference.to_string(),
                },
                e => e,
            })?;
        let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let parsed = manifest::parse_manifest(&resp.body, content_type)
            .map_err(|m| malformed(image, &url, m))?;
        Ok((url, parsed))
    }

    /// An image manifest's config blob, its digest checked, and its URL.
    async fn config_blob(
        &self,
        image: &ImageRef,
        base: &str,
        manifest_url: &str,
        config: &str,
        creds: Option<&Credentials>,
        deadline: tokio::time::Instant,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let blob_url = format!("{base}/v2/{}/blobs/{config}", image.repository);
        let blob = self
            .get(
                image,
                creds,
                Method::GET,
                &blob_url,
                None,
                self.opts.max_body,
                deadline,
            )
            .await
            .map_err(|e| match e {
                RegistryError::NotFound { .. } => malformed(
                    image,
                    manifest_url,
                    format!(
                        "the manifest's config blob {config} is not in the repository (HTTP 404)"
                    ),
                ),
                e => e,
            })?;
        manifest::check_digest(config, &blob.body).map_err(|m| malformed(image, &blob_url, m))?;
        Ok((blob_url, blob.body))
    }

    /// The digest of `tag`'s manifest (index or image), by HEAD.
    pub async fn digest(
        &self,
        image: &ImageRef,
        tag: &str,
        creds: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let op = async {
            let url = format!(
                "{}/v2/{}/manifests/{tag}",
                self.base(image).await?,
                image.repository
            );
            let resp = self
                .get(
                    image,
                    creds,
                    Method::HEAD,
                    &url,
                    Some(MANIFEST_TYPES),
                    self.opts.max_body,
                    deadline,
                )
                .await?;
            resp.headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| RegistryError::Malformed {
                    registry: image.registry.clone(),
                    url,
                    message: "no Docker-Content-Digest header".to_string(),
                })
        };
        self.within(image, "digest lookup", deadline, op).await
    }

    /// One request with auth negotiation, retries, and a body cap of `limit`.
    #[allow(clippy::too_many_arguments)]
    async fn get(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        method: Method,
        url: &str,
        accept: Option<&str>,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, RegistryError> {
        let scope = format!("repository:{}:pull", image.repository);
        let token_key = token_key(&image.registry, &scope, creds);
        let cached = {
            let t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            t.get(&token_key)
                .filter(|(_, exp)| *exp > Instant::now())
                .map(|(tok, _)| tok.clone())
        };
        let mut auth = match (cached, creds) {
            (Some(tok), _) => Auth::Bearer(tok),
            // Basic up front saves a round trip; a token registry answers with its challenge.
            (None, Some(c)) => Auth::Basic(c),
            _ => Auth::None,
        };
        let mut challenged = false;
        loop {
            let resp = self
                .send(image, method.clone(), url, accept, &auth, limit, deadline)
                .await?;
            let status = resp.status;
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = resp
                    .headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                auth = match auth::parse_challenge(challenge) {
                    Some(auth::Challenge::Bearer { realm, service }) => {
                        let (tok, ttl) = self
                            .fetch_token(image, creds, &realm, service.as_deref(), &scope)
                            .await?;
                        // Renew a little early so a token never expires mid-scan.
                        let expires = Instant::now() + ttl.saturating_sub(Duration::from_secs(10));
                        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                        remember_token(&mut t, token_key.clone(), tok.clone(), expires);
                        Auth::Bearer(tok)
                    }
                    Some(auth::Challenge::Basic) if creds.is_some() => {
                        Auth::Basic(creds.expect("checked"))
                    }
                    _ => return Err(auth_error(image, status)),
                };
                continue;
            }
            return match status {
                s if s.is_success() => Ok(resp),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(auth_error(image, status)),
                StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                    registry: image.registry.clone(),
                    repository: image.repository.clone(),
                }),
                s => Err(RegistryError::Status {
                    registry: image.registry.clone(),
                    url: url.to_string(),
                    status: s.as_u16(),
                    // The registry's words, but never its control characters.
                    body: printable(
                        &String::from_utf8_lossy(&resp.body)
                            .chars()
                            .take(200)
                            .collect::<String>(),
                    ),
                }),
            };
        }
    }

    /// Sends and reads the body with retries: connection errors, timeouts,
    /// cut bodies and 5xx back off exponentially with jitter; 429 waits as
    /// `Retry-After` says, unless that is beyond 60 s or the deadline.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        image: &ImageRef,
        method: Method,
        url: &str,
        accept: Option<&str>,
        auth: &Auth<'_>,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, RegistryError> {
        let permit = limiter(&image.registry, self.opts.per_registry)
            .acquire_owned()
            .await;
        let _permit = permit.map_err(|e| RegistryError::Config(e.to_string()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last_try = attempt >= self.opts.attempts;
            let mut req = self.http.request(method.clone(), url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            req = match auth {
                Auth::None => req,
                Auth::Basic(c) => req.basic_auth(&c.username, Some(&c.password)),
                Auth::Bearer(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            };
            let outcome = match req.send().await {
                Ok(r) => {
                    count_request(r.status().as_u16());
                    self.read(image, url, r, limit).await
                }
                Err(e) => {
                    count_request(0);
                    Err(ReadError::Http(e))
                }
            };
            let wait = match outcome {
                Ok(f) if f.status == StatusCode::TOO_MANY_REQUESTS => {
                    let after = f
                        .headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(retry_after);
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match after {
                        // Waiting longer than a scan should take is the
                        // scheduler's job, not ours: give up for now, and say why.
                        Some(d) if d > MAX_RETRY_AFTER || d >= left => {
                            return Err(RegistryError::RateLimited {
                                registry: image.registry.clone(),
                                url: url.to_string(),
                                retry_after_secs: d.as_secs_f64().ceil() as u64,
                            });
                        }
                        _ if last_try => return Ok(f),
                        Some(d) => d,
                        None => self.backoff(attempt),
                    }
                }
                Ok(f) if f.status.is_server_error() && !last_try => self.backoff(attempt),
                Ok(f) => return Ok(f),
                Err(ReadError::TooLarge) => {
                    return Err(RegistryError::TooLarge {
                        registry: image.registry.clone(),
                        url: url.to_string(),
                        limit,
                    });
                }
                Err(ReadError::Http(e))
                    if !last_try
                        && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()) =>
                {
                    self.backoff(attempt)
                }
                Err(ReadError::Http(e)) => {
                    return Err(RegistryError::Connect {
                        registry: image.registry.clone(),
                        message: error_chain(&e),
                    });
                }
            };
            tracing::debug!(registry = %image.registry, url, attempt, wait_ms = wait.as_millis() as u64, "retrying registry request");
            tokio::time::sleep(wait).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .opts
            .backoff
            .saturating_mul(1 << attempt.min(10).saturating_sub(1));
        // Jitter from the clock's nanoseconds: enough to spread synchronized clients.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = f64::from(nanos % 1000) / 1000.0 * 0.5 + 0.75;
        base.mul_f64(jitter).min(Duration::from_secs(30))
    }

    /// The whole response, its body capped at `limit`.
    async fn read(
        &self,
        image: &ImageRef,
        url: &str,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Fetched, ReadError> {
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            tracing::debug!(registry = %image.registry, url, limit, "response announces a body over the cap");
            return Err(ReadError::TooLarge);
        }
        let status = resp.status();
        let headers = std::mem::take(resp.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(ReadError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }

    async fn fetch_token(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), RegistryError> {
        let mut req = self.http.get(realm).query(&[("scope", scope)]);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        if let Some(c) = creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req.send().await.map_err(|e| RegistryError::Connect {
            registry: image.registry.clone(),
            message: format!("token endpoint {realm}: {}", error_chain(&e)),
        })?;
        if !resp.status().is_success() {
            return Err(auth_error(image, resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| RegistryError::Connect {
            registry: image.registry.clone(),
            message: error_chain(&e),
        })?;
        auth::parse_token(&body).ok_or_else(|| RegistryError::Malformed {
            registry: image.registry.clone(),
            url: realm.to_string(),
            message: "no token in response".into(),
        })
    }
}

/// Bearer tokens one client keeps at most; a pooled client lives as long as
/// the process, so the map must not grow with every scope ever seen.
const MAX_TOKENS: usize = 4096;

/// Where a bearer token is cached: registry, scope and a hash of the whole
/// credentials, so two secrets that share a username never share a token
/// (and the password itself is never kept).
fn token_key(registry: &str, scope: &str, creds: Option<&Credentials>) -> String {
    use sha2::Digest as _;
    let who = creds.map_or_else(
        || "anonymous".to_string(),
        |c| {
            let mut h = sha2::Sha256::new();
            // Length-prefixed: ("ab", "c") and ("a", "bc") hash apart.
            h.update((c.username.len() as u64).to_be_bytes());
            h.update(c.username.as_bytes());
            h.update(c.password.as_bytes());
            format!("{:x}", h.finalize())
        },
    );
    format!("{registry}|{scope}|{who}")
}

pub(crate) type TokenMap = HashMap<String, (String, Instant)>;

/// Inserts a token, first dropping expired ones; at the cap, the token that
/// expires soonest makes room.
fn remember_token(map: &mut TokenMap, key: String, token: String, expires: Instant) {
    let now = Instant::now();
    map.retain(|_, (_, exp)| *exp > now);
    if map.len() >= MAX_TOKENS && !map.contains_key(&key) {
        let soonest = map
            .iter()
            .min_by_key(|(_, (_, exp))| *exp)
            .map(|(k, _)| k.clone());
        if let Some(k) = soonest {
            map.remove(&k);
        }
    }
    map.insert(key, (token, expires));
}

/// The longest `Retry-After` we sleep through inside one scan.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A response read to the end.
struct Fetched {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum ReadError {
    Http(reqwest::Error),
    TooLarge,
}

impl From<reqwest::Error> for ReadError {
    fn from(e: reqwest::Error) -> Self {
        ReadError::Http(e)
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn auth_error(image: &ImageRef, status: StatusCode) -> RegistryError {
    RegistryError::Authentication {
        registry: image.registry.clone(),
        repository: image.repository.clone(),
        status: status.as_u16(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    printable(&s)
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.to_string())
    })
}

/// Into a URL path only what the grammars allow.
fn check_reference(reference: &str) -> Result<(), RegistryError> {
    if is_valid_tag(reference) || manifest::is_valid_digest(reference) {
        Ok(())
    } else {
        Err(RegistryError::Config(format!(
            "'{}' is neither a tag nor a digest",
            printable(reference)
        )))
    }
}

fn malformed(image: &ImageRef, url: &str, message: String) -> RegistryError {
    RegistryError::Malformed {
        registry: image.registry.clone(),
        url: url.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_seconds_and_dates() {
        use std::time::{Duration, SystemTime};
        assert_eq!(super::retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            super::retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = super::retry_after(&later).expect("date");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(super::retry_after("soon"), None);
    }

    #[test]
    fn token_keys_hash_the_whole_credentials() {
        use super::{Credentials, token_key};
        let c = |u: &str, p: &str| Credentials {
            username: u.into(),
            password: p.into(),
        };
        let scope = "repository:app:pull";
        let a = token_key("r", scope, Some(&c("flux", "one")));
        assert_ne!(a, token_key("r", scope, Some(&c("flux", "two"))));
        assert_ne!(
            token_key("r", scope, Some(&c("ab", "c"))),
            token_key("r", scope, Some(&c("a", "bc")))
        );
        assert_eq!(a, token_key("r", scope, Some(&c("flux", "one"))));
        assert_ne!(a, token_key("r", scope, None));
        assert!(!a.contains("one") && !a.contains("flux"), "{a}");
    }

    #[test]
    fn the_token_map_drops_expired_entries_and_stays_under_its_cap() {
        use std::time::{Duration, Instant};
        let mut m = super::TokenMap::new();
        let now = Instant::now();
        m.insert("old".into(), ("t".into(), now - Duration::from_secs(1)));
        super::remember_token(
            &mut m,
            "new".into(),
            "t".into(),
            now + Duration::from_secs(60),
        );
        assert!(!m.contains_key("old") && m.contains_key("new"));
        for i in 0..super::MAX_TOKENS + 10 {
            let exp = now + Duration::from_secs(100 + i as u64);
            super::remember_token(&mut m, format!("k{i}"), "t".into(), exp);
        }
        assert_eq!(m.len(), super::MAX_TOKENS);
        // The soonest to expire made room: "new" (60 s) went first.
        assert!(!m.contains_key("new") && m.contains_key(&format!("k{}", super::MAX_TOKENS + 9)));
    }

    #[test]
    fn link_header() {
        assert_eq!(
            super::next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            super::next_link(r#"<https://r/x>; rel=next"#).as_deref(),
            Some("https://r/x")
        );
        assert_eq!(super::next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(super::next_link("garbage"), None);
    }
}
