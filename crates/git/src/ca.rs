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

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_testkit::{Pki, TempDir};

    fn leaf(pki: &Pki) -> Vec<u8> {
        CertificateDer::from_pem_file(&pki.server_cert)
            .expect("server.crt")
            .to_vec()
    }

    #[test]
    fn accepts_the_server_certificate_for_its_names_only() {
        let dir = TempDir::new("pki");
        let pki = Pki::generate(dir.path());
        let ca = CaTrust::from_pem(pki.ca_pem.as_bytes()).expect("CA");
        let der = leaf(&pki);
        ca.verify(&der, "127.0.0.1").expect("IP SAN");
        ca.verify(&der, "localhost").expect("DNS SAN");
        let err = ca.verify(&der, "git.example.com").expect_err("other name");
        assert!(err.contains("not valid for 'git.example.com'"), "{err}");
        let err = ca.verify(&der, "127.0.0.2").expect_err("other IP");
        assert!(err.contains("not valid for '127.0.0.2'"), "{err}");
    }

    #[test]
    fn refuses_a_certificate_from_another_ca_and_a_client_certificate() {
        let dir = TempDir::new("pki");
        let pki = Pki::generate(dir.path());
        let other_dir = TempDir::new("pki");
        let other =
            CaTrust::from_pem(Pki::generate(other_dir.path()).ca_pem.as_bytes()).expect("other CA");
        let err = other
            .verify(&leaf(&pki), "127.0.0.1")
            .expect_err("other CA");
        assert!(err.contains("not signed by the CA"), "{err}");
        // The client certificate is for clientAuth only: not a server.
        let ca = CaTrust::from_pem(pki.ca_pem.as_bytes()).expect("CA");
        let client = CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes())
            .expect("client.crt")
            .to_vec();
        assert!(ca.verify(&client, "127.0.0.1").is_err());
    }

    #[test]
    fn a_bundle_trusts_every_ca_in_it() {
        let (d1, d2) = (TempDir::new("pki"), TempDir::new("pki"));
        let (a, b) = (Pki::generate(d1.path()), Pki::generate(d2.path()));
        let bundle = format!("{}{}", a.ca_pem, b.ca_pem);
        let ca = CaTrust::from_pem(bundle.as_bytes()).expect("bundle");
        ca.verify(&leaf(&a), "127.0.0.1").expect("first CA");
        ca.verify(&leaf(&b), "127.0.0.1").expect("second CA");
        assert!(CaTrust::from_pem(b"").is_err());
    }
}
