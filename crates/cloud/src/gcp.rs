//! GCP: an OAuth2 access token, used as the password of user
//! `oauth2accesstoken` at gcr.io and Artifact Registry. From the metadata
//! server, from workload identity federation (an `external_account` file
//! in `GOOGLE_APPLICATION_CREDENTIALS`: STS token exchange, optionally
//! service-account impersonation), or for a ServiceAccount (GKE workload
//! identity, or a federation provider named by annotation).

use crate::http::{Http, field, json, read_token_file};
use crate::{CloudAuth, CloudError, Fresh};
use std::time::{Duration, SystemTime};
use tagwarden_registry::{CloudLogin, Credentials, Identity};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const STS_URL: &str = "https://sts.googleapis.com/v1/token";
const GSA_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
const WIP_ANNOTATION: &str = "gcp.auth.fluxcd.io/workload-identity-provider";
const USER: &str = "oauth2accesstoken";

pub(crate) async fn login(
    auth: &CloudAuth,
    http: &Http,
    login: &CloudLogin,
) -> Result<Fresh, CloudError> {
    let (token, expires) = match &login.identity {
        Identity::Controller => match auth.env.get("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(file) => external_account(http, file).await?,
            None => metadata_token(auth, http).await?,
        },
        Identity::ServiceAccount {
            namespace,
            name,
            annotations,
        } => {
            let who = format!("service account '{namespace}/{name}'");
            let email = annotations.get(GSA_ANNOTATION).map(String::as_str);
            if let Some(e) = email
                && !email_ok(e)
            {
                return Err(CloudError::Config(format!(
                    "{who}: annotation {GSA_ANNOTATION} '{}' is not a service account email (<name>@<project>.iam.gserviceaccount.com)",
                    tagwarden_registry::printable(e)
                )));
            }
            let (token_audience, sts_audience) = match annotations.get(WIP_ANNOTATION) {
                Some(wip) => {
                    if !wip_ok(wip) {
                        return Err(CloudError::Config(format!(
                            "{who}: annotation {WIP_ANNOTATION} '{}' is not projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>",
                            tagwarden_registry::printable(wip)
                        )));
                    }
                    let a = format!("//iam.googleapis.com/{wip}");
                    (a.clone(), a)
                }
                // GKE: the cluster's identity pool and provider.
                None => {
                    let meta = |p: &'static str| metadata_text(auth, http, p);
                    let project = meta("project/project-id").await?;
                    let location = meta("instance/attributes/cluster-location").await?;
                    let cluster = meta("instance/attributes/cluster-name").await?;
                    let pool = format!("{project}.svc.id.goog");
                    let provider = format!(
                        "https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}"
                    );
                    (pool.clone(), format!("identitynamespace:{pool}:{provider}"))
                }
            };
            let subject = auth
                .service_account_token(&login.identity, &token_audience)
                .await?;
            let federated = sts_exchange(
                http,
                STS_URL,
                &sts_audience,
                "urn:ietf:params:oauth:token-type:jwt",
                &subject,
            )
            .await?;
            match email {
                Some(e) => {
                    let url = format!(
                        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{e}:generateAccessToken"
                    );
                    impersonate(http, &url, &federated.0).await?
                }
                None => federated,
            }
        }
    };
    Ok(Fresh {
        credentials: Credentials {
            username: USER.into(),
            password: token,
        },
        expires: Some(expires),
    })
}

fn email_ok(e: &str) -> bool {
    let Some((name, domain)) = e.split_once('@') else {
        return false;
    };
    let label = |s: &str| {
        !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    label(name)
        && domain
            .strip_suffix(".iam.gserviceaccount.com")
            .is_some_and(label)
}

fn wip_ok(w: &str) -> bool {
    let p: Vec<&str> = w.split('/').collect();
    matches!(
        &p[..],
        ["projects", n, "locations", "global", "workloadIdentityPools", pool, "providers", prov]
            if !n.is_empty() && n.len() <= 30 && n.bytes().all(|b| b.is_ascii_digit())
                && (1..=100).contains(&pool.len()) && (1..=100).contains(&prov.len())
    )
}

fn metadata_base(auth: &CloudAuth) -> String {
    let host = auth
        .env
        .get("GCE_METADATA_HOST")
        .unwrap_or("metadata.google.internal");
    format!("http://{host}/computeMetadata/v1")
}

async fn metadata_text(
    auth: &CloudAuth,
    http: &Http,
    path: &'static str,
) -> Result<String, CloudError> {
    const STEP: &str = "gcp metadata server";
    let url = format!("{}/{path}", metadata_base(auth));
    let body = http
        .send(
            STEP,
            http.get(&url).header("Metadata-Flavor", "Google"),
            &[],
        )
        .await
        .map_err(not_on_gcp)?
        .body;
    let s = String::from_utf8_lossy(&body).trim().to_string();
    if s.is_empty() {
        return Err(CloudError::Malformed {
            step: STEP,
            message: format!("'{path}' is empty"),
        });
    }
    Ok(s)
}

fn not_on_gcp(e: CloudError) -> CloudError {
    match e {
        CloudError::Unreachable { message, .. } => CloudError::NoIdentity(format!(
            "no GCP credentials found: GOOGLE_APPLICATION_CREDENTIALS is not set and the metadata server did not answer ({message}); set GCE_METADATA_HOST when it lives elsewhere"
        )),
        e => e,
    }
}

fn expiry(step: &'static str, v: &serde_json::Value) -> Result<SystemTime, CloudError> {
    let secs = v
        .get("expires_in")
        .and_then(|e| {
            e.as_u64()
                .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| CloudError::Malformed {
            step,
            message: "no 'expires_in' in the answer".into(),
        })?;
    Ok(SystemTime::now() + Duration::from_secs(secs))
}

async fn metadata_token(auth: &CloudAuth, http: &Http) -> Result<(String, SystemTime), CloudError> {
    const STEP: &str = "gcp metadata token";
    let url = format!(
        "{}/instance/service-accounts/default/token",
        metadata_base(auth)
    );
    let body = http
        .send(
            STEP,
            http.get(&url).header("Metadata-Flavor", "Google"),
            &[],
        )
        .await
        .map_err(not_on_gcp)?
        .body;
    let v = json(STEP, &body)?;
    Ok((
        field(STEP, &v, "/access_token")?.to_string(),
        expiry(STEP, &v)?,
    ))
}

/// An `external_account` credentials file: read the subject token, exchange it.
async fn external_account(http: &Http, file: &str) -> Result<(String, SystemTime), CloudError> {
    let var = "GOOGLE_APPLICATION_CREDENTIALS";
    let text = read_token_file(var, file)?;
    let cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CloudError::Config(format!("{var} '{file}': not JSON: {e}")))?;
    let s = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let need =
        |k: &str| s(k).ok_or_else(|| CloudError::Config(format!("{var} '{file}': no '{k}'")));
    match s("type") {
        Some("external_account") => {}
        other => {
            return Err(CloudError::Config(format!(
                "{var} '{file}': type '{}' is not supported; use an external_account (workload identity federation) file or the metadata server",
                other.unwrap_or("")
            )));
        }
    }
    let audience = need("audience")?;
    let token_type = need("subject_token_type")?;
    let token_url = https(var, file, "token_url", s("token_url").unwrap_or(STS_URL))?;
    let source = cfg
        .get("credential_source")
        .ok_or_else(|| CloudError::Config(format!("{var} '{file}': no 'credential_source'")))?;
    let raw = if let Some(path) = source.get("file").and_then(|f| f.as_str()) {
        read_token_file("credential_source.file", path)?
    } else if let Some(url) = source.get("url").and_then(|f| f.as_str()) {
        const STEP: &str = "gcp credential_source url";
        let mut req = http.get(url);
        if let Some(h) = source.get("headers").and_then(|h| h.as_object()) {
            for (k, v) in h {
                if let Some(v) = v.as_str() {
                    req = req.header(k.as_str(), v);
                }
            }
        }
        String::from_utf8_lossy(&http.send(STEP, req, &[]).await?.body)
            .trim()
            .to_string()
    } else {
        return Err(CloudError::Config(format!(
            "{var} '{file}': credential_source has neither 'file' nor 'url'"
        )));
    };
    let subject = match source.pointer("/format/type").and_then(|t| t.as_str()) {
        Some("json") => {
            let name = source
                .pointer("/format/subject_token_field_name")
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    CloudError::Config(format!(
                        "{var} '{file}': format json needs subject_token_field_name"
                    ))
                })?;
            serde_json::from_str::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| v.get(name).and_then(|t| t.as_str()).map(str::to_string))
                .ok_or_else(|| {
                    CloudError::Config(format!(
                        "{var} '{file}': the subject token source has no '{name}'"
                    ))
                })?
        }
        _ => raw,
    };
    let federated = sts_exchange(http, &token_url, audience, token_type, &subject).await?;
    match s("service_account_impersonation_url") {
        Some(url) => {
            let url = https(var, file, "service_account_impersonation_url", url)?;
            impersonate(http, &url, &federated.0).await
        }
        None => Ok(federated),
    }
}

/// Credentials file URLs must be https: they carry tokens.
fn https(var: &str, file: &str, key: &str, url: &str) -> Result<String, CloudError> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => Ok(url.to_string()),
        _ => Err(CloudError::Config(format!(
            "{var} '{file}': {key} '{}' is not an https URL",
            tagwarden_registry::printable(url)
        ))),
    }
}

async fn sts_exchange(
    http: &Http,
    url: &str,
    audience: &str,
    subject_token_type: &str,
    subject: &str,
) -> Result<(String, SystemTime), CloudError> {
    const STEP: &str = "gcp sts token exchange";
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", audience),
        ("scope", SCOPE),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", subject),
        ("subject_token_type", subject_token_type),
    ];
    let body = http
        .send(STEP, http.post(url).form(&form), &[subject])
        .await?
        .body;
    let v = json(STEP, &body)?;
    Ok((
        field(STEP, &v, "/access_token")?.to_string(),
        expiry(STEP, &v)?,
    ))
}

async fn impersonate(
    http: &Http,
    url: &str,
    federated: &str,
) -> Result<(String, SystemTime), CloudError> {
    const STEP: &str = "gcp service account impersonation";
    let body = serde_json::json!({"scope": [SCOPE], "lifetime": "3600s"});
    let resp = http
        .send(
            STEP,
            http.post(url)
                .bearer_auth(federated)
                .header("content-type", "application/json")
                .body(body.to_string()),
            &[federated],
        )
        .await?;
    let v = json(STEP, &resp.body)?;
    let token = field(STEP, &v, "/accessToken")?.to_string();
    let when = field(STEP, &v, "/expireTime")?;
    let expires = tagwarden_api::time::Time::parse(when)
        .map(|t| t.system())
        .ok_or_else(|| CloudError::Malformed {
            step: STEP,
            message: format!(
                "expireTime '{}' is not RFC 3339",
                tagwarden_registry::printable(when)
            ),
        })?;
    Ok((token, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_forms() {
        assert!(email_ok("flux@my-project.iam.gserviceaccount.com"));
        assert!(!email_ok("flux@my-project.iam.gserviceaccount.com.evil"));
        assert!(!email_ok("flux@evil.com"));
        assert!(wip_ok(
            "projects/123456/locations/global/workloadIdentityPools/pool/providers/prov"
        ));
        assert!(!wip_ok(
            "projects/abc/locations/global/workloadIdentityPools/pool/providers/prov"
        ));
        assert!(!wip_ok(
            "projects/1/locations/global/workloadIdentityPools/pool"
        ));
    }
}
