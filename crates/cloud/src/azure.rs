//! Azure: a Microsoft Entra access token for the registry's audience, from
//! workload identity (a federated token file, or a ServiceAccount's token
//! with the client and tenant its annotations name) or IMDS managed
//! identity; exchanged at the registry's `/oauth2/exchange` for an ACR
//! refresh token, the password of user `00000000-0000-0000-0000-000000000000`.

use crate::http::{Http, field, json, read_token_file};
use crate::{CloudAuth, CloudError, Fresh};
use base64::Engine;
use std::time::{Duration, SystemTime};
use tagwarden_registry::{CloudLogin, Credentials, Identity};

const USER: &str = "00000000-0000-0000-0000-000000000000";
const CLIENT_ANNOTATION: &str = "azure.workload.identity/client-id";
const TENANT_ANNOTATION: &str = "azure.workload.identity/tenant-id";
/// The audience Entra expects of a federated ServiceAccount token.
const TOKEN_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The registry's resource and the cloud's default authority, by the
/// registry's sovereign-cloud suffix.
fn cloud(registry: &str) -> (&'static str, &'static str) {
    if registry.ends_with(".azurecr.cn") {
        (
            "https://containerregistry.azure.cn",
            "https://login.chinacloudapi.cn/",
        )
    } else if registry.ends_with(".azurecr.us") {
        (
            "https://containerregistry.azure.us",
            "https://login.microsoftonline.us/",
        )
    } else {
        (
            "https://containerregistry.azure.net",
            "https://login.microsoftonline.com/",
        )
    }
}

fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub(crate) async fn login(
    auth: &CloudAuth,
    http: &Http,
    login: &CloudLogin,
) -> Result<Fresh, CloudError> {
    let (resource, default_authority) = cloud(&login.registry);
    let authority = auth
        .env
        .get("AZURE_AUTHORITY_HOST")
        .unwrap_or(default_authority);
    let (aad, tenant) = match &login.identity {
        Identity::Controller => match (
            auth.env.get("AZURE_CLIENT_ID"),
            auth.env.get("AZURE_TENANT_ID"),
            auth.env.get("AZURE_FEDERATED_TOKEN_FILE"),
        ) {
            (Some(client), Some(tenant), Some(file)) => {
                let assertion = read_token_file("AZURE_FEDERATED_TOKEN_FILE", file)?;
                let t =
                    client_assertion(http, authority, tenant, client, &assertion, resource).await?;
                (t, Some(tenant.to_string()))
            }
            _ => (imds(auth, http, resource).await?, None),
        },
        Identity::ServiceAccount {
            namespace,
            name,
            annotations,
        } => {
            let who = format!("service account '{namespace}/{name}'");
            let get = |key: &str| {
                annotations
                    .get(key)
                    .map(String::as_str)
                    .filter(|v| id_ok(v))
                    .ok_or_else(|| {
                        CloudError::Config(format!(
                            "{who}: annotation {key} is missing or not an ID"
                        ))
                    })
            };
            let (client, tenant) = (get(CLIENT_ANNOTATION)?, get(TENANT_ANNOTATION)?);
            let assertion = auth
                .service_account_token(&login.identity, TOKEN_AUDIENCE)
                .await?;
            let t = client_assertion(http, authority, tenant, client, &assertion, resource).await?;
            (t, Some(tenant.to_string()))
        }
    };
    let refresh = exchange(http, &login.registry, &aad, tenant.as_deref()).await?;
    let expires = jwt_expiry(&refresh);
    Ok(Fresh {
        credentials: Credentials {
            username: USER.into(),
            password: refresh,
        },
        expires,
    })
}

/// Workload identity: the federated token as a client assertion.
async fn client_assertion(
    http: &Http,
    authority: &str,
    tenant: &str,
    client: &str,
    assertion: &str,
    resource: &str,
) -> Result<String, CloudError> {
    const STEP: &str = "entra token (workload identity)";
    if !id_ok(tenant) {
        return Err(CloudError::Config(format!(
            "tenant '{}' is not a tenant ID",
            tagwarden_registry::printable(tenant)
        )));
    }
    let base = url::Url::parse(authority)
        .ok()
        .filter(|u| u.scheme() == "https")
        .ok_or_else(|| {
            CloudError::Config(format!(
                "AZURE_AUTHORITY_HOST '{}' is not an https URL",
                tagwarden_registry::printable(authority)
            ))
        })?;
    let url = base
        .join(&format!("{tenant}/oauth2/v2.0/token"))
        .map_err(|e| CloudError::Config(format!("AZURE_AUTHORITY_HOST: {e}")))?;
    let scope = format!("{resource}/.default");
    let form = [
        ("client_id", client),
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", scope.as_str()),
    ];
    let body = http
        .send(STEP, http.post(url.as_str()).form(&form), &[assertion])
        .await?
        .body;
    Ok(field(STEP, &json(STEP, &body)?, "/access_token")?.to_string())
}

/// IMDS managed identity (the user-assigned one when AZURE_CLIENT_ID is set).
async fn imds(auth: &CloudAuth, http: &Http, resource: &str) -> Result<String, CloudError> {
    const STEP: &str = "azure instance metadata";
    let host = auth
        .env
        .get("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .unwrap_or("http://169.254.169.254")
        .trim_end_matches('/');
    let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
    if let Some(c) = auth.env.get("AZURE_CLIENT_ID") {
        query.push(("client_id", c));
    }
    let req = http
        .get(&format!("{host}/metadata/identity/oauth2/token"))
        .query(&query)
        .header("Metadata", "true")
        .timeout(Duration::from_secs(5));
    let body = http.send(STEP, req, &[]).await.map_err(|e| match e {
        CloudError::Unreachable { message, .. } => CloudError::NoIdentity(format!(
            "no Azure credentials found: set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE (workload identity), or run with a managed identity (IMDS did not answer: {message})"
        )),
        e => e,
    })?;
    Ok(field(STEP, &json(STEP, &body.body)?, "/access_token")?.to_string())
}

/// The registry's exchange of an Entra token for an ACR refresh token.
async fn exchange(
    http: &Http,
    registry: &str,
    aad: &str,
    tenant: Option<&str>,
) -> Result<String, CloudError> {
    const STEP: &str = "acr token exchange";
    let mut form = vec![
        ("grant_type", "access_token"),
        ("service", registry),
        ("access_token", aad),
    ];
    if let Some(t) = tenant {
        form.push(("tenant", t));
    }
    let url = format!("https://{registry}/oauth2/exchange");
    let body = http
        .send(STEP, http.post(&url).form(&form), &[aad])
        .await?
        .body;
    Ok(field(STEP, &json(STEP, &body)?, "/refresh_token")?.to_string())
}

/// The `exp` claim of a JWT, unverified: only to know when to renew.
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let exp = v.get("exp")?.as_u64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sovereign_clouds_and_refresh_token_expiry() {
        assert_eq!(
            cloud("r.azurecr.io").0,
            "https://containerregistry.azure.net"
        );
        assert_eq!(cloud("r.azurecr.cn").1, "https://login.chinacloudapi.cn/");
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!("{}.{}.sig", b64("{}"), b64(r#"{"exp":1700000000}"#));
        assert_eq!(
            jwt_expiry(&jwt),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry("opaque"), None);
    }
}
