//! Who holds a CA's private key. rcgen signs through its `SigningKey` trait; `CaKey` is
//! that trait over the places a CA key can live: a key file in the data directory, or a
//! key inside a PKCS#11 token that never leaves it.

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

use super::pkcs11::Pkcs11Key;
use super::PkiError;

/// The key types a CA can have (`--ca-key-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaKeyType {
    P256,
    P384,
    Rsa3072,
    Rsa4096,
}

impl CaKeyType {
    pub const ALL: [CaKeyType; 4] = [
        CaKeyType::P256,
        CaKeyType::P384,
        CaKeyType::Rsa3072,
        CaKeyType::Rsa4096,
    ];

    pub fn key(self) -> &'static str {
        match self {
            CaKeyType::P256 => "p256",
            CaKeyType::P384 => "p384",
            CaKeyType::Rsa3072 => "rsa3072",
            CaKeyType::Rsa4096 => "rsa4096",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CaKeyType::P256 => "ECDSA P-256",
            CaKeyType::P384 => "ECDSA P-384",
            CaKeyType::Rsa3072 => "RSA-3072",
            CaKeyType::Rsa4096 => "RSA-4096",
        }
    }

    pub fn parse(s: &str) -> Result<CaKeyType, PkiError> {
        let s = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        CaKeyType::ALL
            .into_iter()
            .find(|k| k.key() == s)
            .ok_or_else(|| {
                PkiError::BadInput(format!(
                    "'{s}' is not a CA key type: use p256, p384, rsa3072 or rsa4096"
                ))
            })
    }

    /// The signature algorithm a key of this type signs with (SHA-384 for P-384, as RFC
    /// 5480 pairs them; SHA-256 with PKCS #1 v1.5 for RSA, what every verifier knows).
    pub fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            CaKeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CaKeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            CaKeyType::Rsa3072 | CaKeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            CaKeyType::Rsa3072 => Some(3072),
            CaKeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The type of a key that signs with `alg`, when hostca knows it.
    pub fn of_algorithm(alg: &SignatureAlgorithm, spki_der: &[u8]) -> Option<CaKeyType> {
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Some(CaKeyType::P256);
        }
        if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            return Some(CaKeyType::P384);
        }
        if alg == &rcgen::PKCS_RSA_SHA256 {
            return match super::keys::classify_der(spki_der).ok()? {
                super::keys::KeyKind::Rsa { bits } if bits <= 3072 => Some(CaKeyType::Rsa3072),
                super::keys::KeyKind::Rsa { .. } => Some(CaKeyType::Rsa4096),
                _ => None,
            };
        }
        None
    }
}

/// A file key generated in memory: ring for ECDSA, the `rsa` crate for RSA (ring signs
/// RSA but cannot generate RSA keys).
pub fn generate_file_key(kind: CaKeyType) -> Result<KeyPair, PkiError> {
    match kind.rsa_bits() {
        None => KeyPair::generate_for(kind.algorithm())
            .map_err(|e| PkiError::failed("CA key generation", e)),
        Some(bits) => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| PkiError::failed("RSA CA key generation", e))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| PkiError::failed("RSA CA key encoding", e))?;
            let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
            KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| PkiError::failed("RSA CA key", e))
        }
    }
}

/// A CA's signing key, wherever it lives.
pub enum CaKey {
    File(KeyPair),
    Pkcs11(Pkcs11Key),
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaKey::File(_) => f.write_str("CaKey::File"),
            CaKey::Pkcs11(k) => write!(f, "CaKey::Pkcs11({})", k.describe()),
        }
    }
}

impl CaKey {
    /// Where the key is, for the CA page: "key file" or the token and object.
    pub fn describe(&self) -> String {
        match self {
            CaKey::File(_) => "key file".into(),
            CaKey::Pkcs11(k) => k.describe(),
        }
    }

    /// Whether the key can sign now (the PKCS#11 token is reachable); for `/readyz`.
    pub fn check(&self) -> Result<(), PkiError> {
        match self {
            CaKey::File(_) => Ok(()),
            CaKey::Pkcs11(k) => k.check(),
        }
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::File(k) => k.der_bytes(),
            CaKey::Pkcs11(k) => k.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaKey::File(k) => PublicKeyData::algorithm(k),
            CaKey::Pkcs11(k) => k.algorithm(),
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::File(k) => k.sign(msg),
            CaKey::Pkcs11(k) => k.sign(msg),
        }
    }
}
