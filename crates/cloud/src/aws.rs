//! AWS: credentials as the SDKs' default chain finds them (environment
//! keys, IRSA web identity, EKS Pod Identity / ECS container credentials,
//! EC2 IMDSv2), or a ServiceAccount's role (`eks.amazonaws.com/role-arn`)
//! through STS; then ECR `GetAuthorizationToken`, SigV4-signed, whose
//! `AWS:<password>` token is the registry's basic auth.

use crate::http::{Http, field, json, read_token_file, xml_value};
use crate::{CloudAuth, CloudError, Fresh};
use base64::Engine;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use tagwarden_registry::provider::{ecr_region, is_ecr_public};
use tagwarden_registry::{CloudLogin, Credentials, Identity};

/// Temporary or long-lived AWS keys.
struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The audience AWS STS expects of a ServiceAccount token.
const STS_AUDIENCE: &str = "sts.amazonaws.com";

fn role_arn_ok(arn: &str) -> bool {
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^arn:aws[\w-]*:iam::[0-9]{1,30}:role/.{1,200}$").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(arn))
}

/// The partition's DNS suffix of an ECR host (`amazonaws.com`, `amazonaws.com.cn`, …).
fn partition_suffix(registry: &str, region: &str) -> String {
    registry
        .split_once(&format!(".{region}."))
        .map_or("amazonaws.com".to_string(), |(_, s)| s.to_string())
}

pub(crate) async fn login(
    auth: &CloudAuth,
    http: &Http,
    login: &CloudLogin,
) -> Result<Fresh, CloudError> {
    let region = ecr_region(&login.registry).ok_or_else(|| {
        CloudError::Config(format!("'{}' is not an ECR registry host", login.registry))
    })?;
    let suffix = partition_suffix(&login.registry, region);
    let keys = match &login.identity {
        Identity::Controller => controller_keys(auth, http, region, &suffix).await?,
        Identity::ServiceAccount {
            namespace,
            name,
            annotations,
        } => {
            let arn = annotations
                .get(ROLE_ANNOTATION)
                .map(String::as_str)
                .unwrap_or("");
            if !role_arn_ok(arn) {
                return Err(CloudError::Config(format!(
                    "service account '{namespace}/{name}': annotation {ROLE_ANNOTATION} '{}' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                    tagwarden_registry::printable(arn)
                )));
            }
            let token = auth
                .service_account_token(&login.identity, STS_AUDIENCE)
                .await?;
            // The session name says who asked, within STS's 64 characters.
            let session: String = format!("{name}.{namespace}.{region}.fluxcd.io")
                .chars()
                .take(64)
                .collect();
            assume_role_with_web_identity(auth, http, region, &suffix, arn, &session, &token)
                .await?
        }
    };
    get_authorization_token(auth, http, login, region, &suffix, &keys).await
}

async fn controller_keys(
    auth: &CloudAuth,
    http: &Http,
    region: &str,
    suffix: &str,
) -> Result<Keys, CloudError> {
    let env = &auth.env;
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Keys {
            access_key_id: id.into(),
            secret_access_key: secret.into(),
            session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
        });
    }
    if let (Some(arn), Some(file)) = (
        env.get("AWS_ROLE_ARN"),
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
    ) {
        let token = read_token_file("AWS_WEB_IDENTITY_TOKEN_FILE", file)?;
        let session = env.get("AWS_ROLE_SESSION_NAME").unwrap_or("tagwarden");
        return assume_role_with_web_identity(auth, http, region, suffix, arn, session, &token)
            .await;
    }
    let container = env
        .get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .map(str::to_string)
        .or_else(|| {
            env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .map(|p| format!("http://169.254.170.2{p}"))
        });
    if let Some(uri) = container {
        return container_keys(auth, http, &uri).await;
    }
    if env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(no_credentials(
            "instance metadata is disabled (AWS_EC2_METADATA_DISABLED)",
        ));
    }
    imds_keys(auth, http).await.map_err(|e| match e {
        CloudError::Unreachable { message, .. } => {
            no_credentials(&format!("instance metadata did not answer: {message}"))
        }
        e => e,
    })
}

fn no_credentials(why: &str) -> CloudError {
    CloudError::NoIdentity(format!(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), or AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity); {why}"
    ))
}

/// The endpoint for `service`: `AWS_ENDPOINT_URL_<SERVICE>`, then
/// `AWS_ENDPOINT_URL`, then the regional default.
fn endpoint(auth: &CloudAuth, var: &str, default: String) -> Result<String, CloudError> {
    let url = auth
        .env
        .get(var)
        .or_else(|| auth.env.get("AWS_ENDPOINT_URL"))
        .map_or(default, str::to_string);
    let parsed = url::Url::parse(&url)
        .map_err(|e| CloudError::Config(format!("{var}: '{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(CloudError::Config(format!(
            "{var}: '{url}' is not an http(s) URL"
        )));
    }
    Ok(url)
}

async fn assume_role_with_web_identity(
    auth: &CloudAuth,
    http: &Http,
    region: &str,
    suffix: &str,
    role_arn: &str,
    session: &str,
    token: &str,
) -> Result<Keys, CloudError> {
    const STEP: &str = "sts AssumeRoleWithWebIdentity";
    let url = endpoint(
        auth,
        "AWS_ENDPOINT_URL_STS",
        format!("https://sts.{region}.{suffix}/"),
    )?;
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", session),
        ("WebIdentityToken", token),
    ];
    let resp = http
        .send(STEP, http.post(&url).form(&form), &[token])
        .await
        .map_err(|e| match e {
            CloudError::Refused {
                status, message, ..
            } => CloudError::Refused {
                step: STEP,
                status,
                message: format!("role '{role_arn}': {message}"),
            },
            e => e,
        })?;
    let xml = String::from_utf8_lossy(&resp.body);
    let get = |tag: &str| {
        xml_value(&xml, tag).ok_or_else(|| CloudError::Malformed {
            step: STEP,
            message: format!("no <{tag}> in the answer"),
        })
    };
    Ok(Keys {
        access_key_id: get("AccessKeyId")?,
        secret_access_key: get("SecretAccessKey")?,
        session_token: Some(get("SessionToken")?),
    })
}

/// EKS Pod Identity and ECS: the agent's JSON with the temporary keys.
async fn container_keys(auth: &CloudAuth, http: &Http, uri: &str) -> Result<Keys, CloudError> {
    const STEP: &str = "container credentials";
    let token = match auth.env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(f) => Some(read_token_file(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            f,
        )?),
        None => auth
            .env
            .get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            .map(str::to_string),
    };
    let mut req = http.get(uri);
    if let Some(t) = &token {
        req = req.header("Authorization", t);
    }
    let secrets: Vec<&str> = token.iter().map(String::as_str).collect();
    let body = http.send(STEP, req, &secrets).await?.body;
    keys_from_json(STEP, &json(STEP, &body)?)
}

fn keys_from_json(step: &'static str, v: &serde_json::Value) -> Result<Keys, CloudError> {
    Ok(Keys {
        access_key_id: field(step, v, "/AccessKeyId")?.into(),
        secret_access_key: field(step, v, "/SecretAccessKey")?.into(),
        session_token: v.get("Token").and_then(|t| t.as_str()).map(str::to_string),
    })
}

/// EC2 instance metadata, version 2: a session token first, then the role's keys.
async fn imds_keys(auth: &CloudAuth, http: &Http) -> Result<Keys, CloudError> {
    const STEP: &str = "ec2 instance metadata";
    let base = auth
        .env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or("http://169.254.169.254")
        .trim_end_matches('/')
        .to_string();
    // Off EC2 nothing answers: give up fast.
    let quick = Duration::from_secs(2);
    let session = http
        .send(
            STEP,
            http.put(&format!("{base}/latest/api/token"))
                .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
                .timeout(quick),
            &[],
        )
        .await?;
    let session = String::from_utf8_lossy(&session.body).trim().to_string();
    let get = |path: String| {
        http.get(&format!("{base}{path}"))
            .header("X-aws-ec2-metadata-token", &session)
            .timeout(quick)
    };
    let roles = http
        .send(
            STEP,
            get("/latest/meta-data/iam/security-credentials/".into()),
            &[&session],
        )
        .await?;
    let role = String::from_utf8_lossy(&roles.body)
        .lines()
        .next()
        .map(str::trim)
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .map(str::to_string)
        .ok_or_else(|| no_credentials("the instance has no IAM role"))?;
    let body = http
        .send(
            STEP,
            get(format!("/latest/meta-data/iam/security-credentials/{role}")),
            &[&session],
        )
        .await?
        .body;
    keys_from_json(STEP, &json(STEP, &body)?)
}

async fn get_authorization_token(
    auth: &CloudAuth,
    http: &Http,
    login: &CloudLogin,
    region: &str,
    suffix: &str,
    keys: &Keys,
) -> Result<Fresh, CloudError> {
    let public = is_ecr_public(&login.registry);
    let (step, service, target, url) = if public {
        (
            "ecr-public GetAuthorizationToken",
            "ecr-public",
            "SpencerFrontendService.GetAuthorizationToken",
            endpoint(
                auth,
                "AWS_ENDPOINT_URL_ECR_PUBLIC",
                "https://api.ecr-public.us-east-1.amazonaws.com/".into(),
            )?,
        )
    } else {
        (
            "ecr GetAuthorizationToken",
            "ecr",
            "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            endpoint(
                auth,
                "AWS_ENDPOINT_URL_ECR",
                format!("https://api.ecr.{region}.{suffix}/"),
            )?,
        )
    };
    let body = b"{}".to_vec();
    let headers = [
        ("content-type", "application/x-amz-json-1.1".to_string()),
        ("x-amz-target", target.to_string()),
    ];
    let signed = sign(keys, region, service, "POST", &url, &headers, &body)?;
    let mut req = http.post(&url).body(body);
    for (k, v) in headers.iter().chain(signed.iter()) {
        req = req.header(*k, v);
    }
    let mut secrets = vec![keys.secret_access_key.as_str()];
    if let Some(t) = &keys.session_token {
        secrets.push(t);
    }
    let resp = http.send(step, req, &secrets).await?;
    let v = json(step, &resp.body)?;
    let data = if public {
        v.get("authorizationData")
    } else {
        v.pointer("/authorizationData/0")
    }
    .ok_or_else(|| CloudError::Malformed {
        step,
        message: "no authorizationData in the answer".into(),
    })?;
    let token = field(step, data, "/authorizationToken")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| CloudError::Malformed {
            step,
            message: "authorizationToken is not base64".into(),
        })?;
    let raw = String::from_utf8(raw).map_err(|_| CloudError::Malformed {
        step,
        message: "authorizationToken is not UTF-8".into(),
    })?;
    let (user, password) = raw.split_once(':').ok_or_else(|| CloudError::Malformed {
        step,
        message: "authorizationToken is not user:password".into(),
    })?;
    // Epoch seconds (a JSON number, possibly fractional).
    let expires = data
        .get("expiresAt")
        .and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s));
    Ok(Fresh {
        credentials: Credentials {
            username: user.to_string(),
            password: password.to_string(),
        },
        expires,
    })
}

/// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`)
/// for one request.
fn sign(
    keys: &Keys,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, CloudError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let bad = |e: String| CloudError::Config(format!("signing the request: {e}"));
    let identity = aws_credential_types::Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "tagwarden",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| bad(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| bad(e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| bad(e.to_string()))?
        .into_parts();
    let mut out = Vec::new();
    for (name, value) in instructions.headers() {
        let name = match name {
            "authorization" => "authorization",
            "x-amz-date" => "x-amz-date",
            "x-amz-security-token" => "x-amz-security-token",
            "x-amz-content-sha256" => "x-amz-content-sha256",
            _ => continue,
        };
        out.push((name, value.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_and_partitions() {
        assert!(role_arn_ok("arn:aws:iam::123456789012:role/flux"));
        assert!(role_arn_ok("arn:aws-cn:iam::123456789012:role/path/flux"));
        assert!(!role_arn_ok("arn:aws:iam::123456789012:user/flux"));
        assert!(!role_arn_ok(""));
        assert_eq!(
            partition_suffix(
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "cn-north-1"
            ),
            "amazonaws.com.cn"
        );
        assert_eq!(
            partition_suffix(
                "123456789012.dkr.ecr.me-central-1.amazonaws.com",
                "me-central-1"
            ),
            "amazonaws.com"
        );
    }

    #[test]
    fn sigv4_headers_carry_the_session_token_and_scope() {
        let keys = Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("session".into()),
        };
        let h = sign(
            &keys,
            "me-central-1",
            "ecr",
            "POST",
            "https://api.ecr.me-central-1.amazonaws.com/",
            &[("x-amz-target", "T".into())],
            b"{}",
        )
        .expect("signs");
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let auth = get("authorization").expect("authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/me-central-1/ecr/aws4_request"), "{auth}");
        assert!(auth.contains("x-amz-target"), "{auth}");
        assert!(!auth.contains("wJalr"), "{auth}");
        assert_eq!(get("x-amz-security-token").as_deref(), Some("session"));
        assert!(get("x-amz-date").is_some());
    }
}
