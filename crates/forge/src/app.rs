//! GitHub App authentication: a JWT signed with the app's private key
//! (RS256), exchanged for an installation token.

use crate::ForgeError;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The DER inside a PEM block, and whether it is PKCS#8 (`PRIVATE KEY`) or
/// PKCS#1 (`RSA PRIVATE KEY`).
fn pem_der(pem: &[u8]) -> Result<(Vec<u8>, bool), ForgeError> {
    let text = String::from_utf8_lossy(pem);
    let bad = || {
        ForgeError::Config(
            "githubAppPrivateKey: expected a PEM RSA private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)".into(),
        )
    };
    let (label, rest) = if let Some(r) = text.split_once("-----BEGIN RSA PRIVATE KEY-----") {
        (false, r.1)
    } else if let Some(r) = text.split_once("-----BEGIN PRIVATE KEY-----") {
        (true, r.1)
    } else {
        return Err(bad());
    };
    let body = rest.split("-----END").next().ok_or_else(bad)?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).map_err(|_| bad())?;
    Ok((der, label))
}

/// A JWT for the app, valid from a minute ago (clock skew) for nine minutes
/// (GitHub allows ten).
pub(crate) fn jwt(app_id: &str, pem: &[u8], now_secs: u64) -> Result<String, ForgeError> {
    let (der, pkcs8) = pem_der(pem)?;
    let key = if pkcs8 {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    } else {
        ring::signature::RsaKeyPair::from_der(&der)
    }
    .map_err(|e| ForgeError::Config(format!("githubAppPrivateKey: not a usable RSA key: {e}")))?;
    let iss: serde_json::Value = match app_id.parse::<u64>() {
        Ok(n) => n.into(),
        Err(_) => app_id.into(),
    };
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iat": now_secs.saturating_sub(60),
        "exp": now_secs + 540,
        "iss": iss,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| ForgeError::Config("githubAppPrivateKey: signing failed".into()))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_rsa_pem_are_named() {
        let e = jwt("1", b"not a key", 0).expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("githubAppPrivateKey: expected a PEM"),
            "{e}"
        );
        let e = jwt(
            "1",
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            0,
        )
        .expect_err("bad");
        assert!(e.to_string().contains("not a usable RSA key"), "{e}");
    }
}
