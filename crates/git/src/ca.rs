//! `ca.crt` from the GitRepository secret: a private CA trusted for HTTPS
//! remotes on top of the system store libgit2 (OpenSSL) already uses.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

/// The trust anchors read from a `ca.crt` PEM bundle.
#[derive(Clone)]
pub(crate) struct CaTrust {
    anchors: Vec<TrustAnchor<'static>>,
}

impl CaTrust {
    /// Every certificate in the PEM is a trust anchor (bundles are common).
    pub(crate) fn from_pem(pem: &[u8]) -> Result<CaTrust, String> {
        let mut anchors = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("ca.crt: invalid PEM: {e}"))?;
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| format!("ca.crt: not a CA certificate: {e}"))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err("ca.crt: no PEM certificate found".into());
        }
        Ok(CaTrust { anchors })
    }

    /// Checks the server's leaf certificate (DER) chains to one of our
    /// anchors, is valid now for server auth, and names `host` (DNS or IP).
    pub(crate) fn verify(&self, leaf_der: &[u8], host: &str) -> Result<(), String> {
        let der = CertificateDer::from(leaf_der);
        let cert =
            EndEntityCert::try_from(&der).map_err(|e| format!("unreadable certificate: {e}"))?;
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &[],
            UnixTime::now(),
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| format!("not signed by the CA in ca.crt: {e}"))?;
        // Brackets around an IPv6 host would stop it parsing as an address.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare).map_err(|e| format!("host '{host}': {e}"))?;
        cert.verify_is_valid_for_subject_name(&name)
            .map_err(|e| format!("certificate is not valid for '{host}': {e}"))
    }
}
