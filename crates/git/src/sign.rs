//! Commit signatures for `spec.git.commit.signingKey.secretRef`: an armored
//! OpenPGP private key (`git.asc`, optional `passphrase`) as Flux reads it,
//! or an OpenSSH private key (`identity`, optional `password`) giving the
//! `-----BEGIN SSH SIGNATURE-----` form git verifies with `gpg.format=ssh`.

use crate::GitError;
use pgp::composed::{ArmorOptions, Deserializable, DetachedSignature, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password};
use ssh_key::{HashAlg, LineEnding, PrivateKey, SshSig};
use std::collections::BTreeMap;

/// A key that signs commits. Debug never shows key material.
pub struct Signer {
    kind: Kind,
}

enum Kind {
    OpenPgp {
        key: Box<SignedSecretKey>,
        passphrase: Password,
        /// Index into `secret_subkeys`, when the primary key may not sign.
        subkey: Option<usize>,
    },
    Ssh(Box<PrivateKey>),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::OpenPgp { key, .. } => f
                .debug_struct("Signer::OpenPgp")
                .field("fingerprint", &key.primary_key.fingerprint().to_string())
                .finish(),
            Kind::Ssh(key) => f
                .debug_struct("Signer::Ssh")
                .field("algorithm", &key.algorithm().as_str())
                .finish(),
        }
    }
}

/// SSH signatures for git: the namespace `git verify-commit` checks.
const SSH_NAMESPACE: &str = "git";

impl Signer {
    /// Reads a signing key secret: `git.asc` (+ `passphrase`) for OpenPGP,
    /// else `identity` (+ `password`) for SSH. The key is unlocked and tried
    /// once here, so a wrong passphrase shows before anything is committed.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Signer, GitError> {
        let text = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|v| !v.trim().is_empty())
        };
        let signer = if let Some(armored) = text("git.asc") {
            Signer::openpgp(&armored, text("passphrase").as_deref())?
        } else if let Some(identity) = text("identity") {
            Signer::ssh(&identity, text("password").as_deref())?
        } else {
            return Err(GitError::Sign(
                "the signing key secret has neither 'git.asc' (OpenPGP) nor 'identity' (SSH)"
                    .into(),
            ));
        };
        signer.sign(b"tagwarden: check the signing key\n")?;
        Ok(signer)
    }

    /// An armored OpenPGP secret key, encrypted with `passphrase` if given.
    pub fn openpgp(armored: &str, passphrase: Option<&str>) -> Result<Signer, GitError> {
        let (key, _) = SignedSecretKey::from_string(armored)
            .map_err(|e| GitError::Sign(format!("invalid OpenPGP key in 'git.asc': {e}")))?;
        let may_sign = |sigs: &[pgp::packet::Signature]| sigs.iter().any(|s| s.key_flags().sign());
        let primary_signs = key.details.users.iter().any(|u| may_sign(&u.signatures))
            || may_sign(&key.details.direct_signatures);
        // gpg signs with a signing subkey when the primary key only certifies.
        let subkey = if primary_signs {
            None
        } else {
            let i = key
                .secret_subkeys
                .iter()
                .position(|s| may_sign(&s.signatures));
            if i.is_none() {
                return Err(GitError::Sign(
                    "the OpenPGP key in 'git.asc' has no key allowed to sign".into(),
                ));
            }
            i
        };
        Ok(Signer {
            kind: Kind::OpenPgp {
                key: Box::new(key),
                passphrase: passphrase
                    .map(Password::from)
                    .unwrap_or_else(Password::empty),
                subkey,
            },
        })
    }

    /// An OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn ssh(identity: &str, password: Option<&str>) -> Result<Signer, GitError> {
        let key = PrivateKey::from_openssh(identity).map_err(|e| {
            GitError::Sign(format!(
                "invalid SSH signing key in 'identity' (OpenSSH format expected): {e}"
            ))
        })?;
        let key = if key.is_encrypted() {
            let password = password.ok_or_else(|| {
                GitError::Sign(
                    "the SSH signing key is encrypted and the secret has no 'password'".into(),
                )
            })?;
            key.decrypt(password).map_err(|_| {
                GitError::Sign("cannot decrypt the SSH signing key: wrong 'password'".into())
            })?
        } else {
            key
        };
        Ok(Signer {
            kind: Kind::Ssh(Box::new(key)),
        })
    }

    /// A detached, armored signature over `data`, as git stores in `gpgsig`.
    pub fn sign(&self, data: &[u8]) -> Result<String, GitError> {
        match &self.kind {
            Kind::OpenPgp {
                key,
                passphrase,
                subkey,
            } => {
                let mut rng = rand::thread_rng();
                let signed = match subkey.and_then(|i| key.secret_subkeys.get(i)) {
                    Some(sub) => DetachedSignature::sign_binary_data(
                        &mut rng,
                        &sub.key,
                        passphrase,
                        HashAlgorithm::Sha256,
                        data,
                    ),
                    None => DetachedSignature::sign_binary_data(
                        &mut rng,
                        &key.primary_key,
                        passphrase,
                        HashAlgorithm::Sha256,
                        data,
                    ),
                };
                // rpgp's errors name the cause (wrong passphrase, unsupported
                // algorithm) but never the key material.
                let signed = signed.map_err(|e| {
                    GitError::Sign(format!("OpenPGP signing failed (check 'passphrase'): {e}"))
                })?;
                signed
                    .to_armored_string(ArmorOptions::default())
                    .map_err(|e| GitError::Sign(format!("OpenPGP armor: {e}")))
            }
            Kind::Ssh(key) => {
                let sig = match key.key_data().rsa() {
                    Some(rsa) => rsa_sshsig(key.public_key().key_data(), rsa, data),
                    None => key.sign(SSH_NAMESPACE, HashAlg::Sha512, data),
                }
                .map_err(|e| GitError::Sign(format!("SSH signing failed: {e}")))?;
                sig.to_pem(LineEnding::LF)
                    .map_err(|e| GitError::Sign(format!("SSH signature encoding: {e}")))
            }
        }
    }
}

/// An `rsa-sha2-512` SSHSIG. ssh-key 0.6.7 rebuilds RSA keys from the primes
/// (p, p) instead of (p, q), which fails, so the key is assembled here.
fn rsa_sshsig(
    public: &ssh_key::public::KeyData,
    key: &ssh_key::private::RsaKeypair,
    data: &[u8],
) -> ssh_key::Result<SshSig> {
    use rsa::BigUint;
    use sha2::{Digest, Sha512};
    let int = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(BigUint::from_bytes_be)
            .ok_or(ssh_key::Error::Crypto)
    };
    let private = rsa::RsaPrivateKey::from_components(
        int(&key.public.n)?,
        int(&key.public.e)?,
        int(&key.private.d)?,
        vec![int(&key.private.p)?, int(&key.private.q)?],
    )
    .map_err(|_| ssh_key::Error::Crypto)?;
    let signed = SshSig::signed_data(SSH_NAMESPACE, HashAlg::Sha512, data)?;
    let bytes = private
        .sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(&signed))
        .map_err(|_| ssh_key::Error::Crypto)?;
    let signature = ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        bytes,
    )?;
    SshSig::new(public.clone(), SSH_NAMESPACE, HashAlg::Sha512, signature)
}
