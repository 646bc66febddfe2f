//! Which keys and signatures a CSR may carry, decided before any signature is checked so
//! that a refusal names the real reason (a P-521 key, a SHA-1 signature) instead of "the
//! signature does not verify".
//!
//! RSA-PSS is verified here rather than by x509-parser: its `verify` feature hands PSS to
//! ring, which only knows a salt as long as the hash, while `openssl req -sigopt
//! rsa_padding_mode:pss` signs with the longest salt by default. EMSA-PSS-VERIFY (RFC 8017,
//! 9.1.2) over a public RSA operation is short, and every input to it is public.

use num_bigint::BigUint;
use rcgen::KeyUsagePurpose;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use super::PkiError;

/// What a refusal tells the requester they may use instead.
pub const ACCEPTED: &str = "hostca accepts ECDSA P-256 or P-384, Ed25519, and RSA keys \
of 2048 to 8192 bits (rsaEncryption), signed with SHA-256, SHA-384 or SHA-512 (RSA: \
PKCS #1 v1.5 or PSS)";

pub const RSA_MIN_BITS: usize = 2048;
/// ring's limit for RSA verification; larger keys only cost the CA time.
pub const RSA_MAX_BITS: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa { bits: usize },
}

impl KeyKind {
    pub fn name(self) -> String {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256".into(),
            KeyKind::EcdsaP384 => "ECDSA P-384".into(),
            KeyKind::Ed25519 => "Ed25519".into(),
            KeyKind::Rsa { bits } => format!("RSA-{bits}"),
        }
    }

    /// What a leaf's key may be used for. An EC or EdDSA key cannot encipher keys (RFC
    /// 8813, RFC 8410: keyEncipherment is prohibited); an RSA key in TLS 1.2 RSA key
    /// exchange does.
    pub fn leaf_key_usages(self) -> Vec<KeyUsagePurpose> {
        match self {
            KeyKind::Rsa { .. } => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            _ => vec![KeyUsagePurpose::DigitalSignature],
        }
    }
}

fn refuse(msg: String) -> PkiError {
    PkiError::BadInput(format!("{msg}; {ACCEPTED}"))
}

/// The kind of an accepted key, or a refusal that names the key type.
pub fn classify(spki: &SubjectPublicKeyInfo) -> Result<KeyKind, PkiError> {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => Ok(KeyKind::EcdsaP256),
                Some("1.3.132.0.34") => Ok(KeyKind::EcdsaP384),
                Some("1.3.132.0.35") => Err(refuse(
                    "the CSR's key is ECDSA P-521, which is not accepted".into(),
                )),
                Some("1.3.132.0.10") => Err(refuse(
                    "the CSR's key is ECDSA secp256k1, which is not accepted".into(),
                )),
                Some(other) => Err(refuse(format!(
                    "the CSR's key is ECDSA on the curve {other}, which is not accepted"
                ))),
                None => Err(refuse(
                    "the CSR's key is ECDSA with explicit curve parameters, which are not accepted"
                        .into(),
                )),
            }
        }
        "1.3.101.112" => Ok(KeyKind::Ed25519),
        "1.3.101.113" => Err(refuse(
            "the CSR's key is Ed448, which is not accepted".into(),
        )),
        "1.3.101.110" | "1.3.101.111" => Err(refuse(format!(
            "the CSR's key is {} (key agreement only, it cannot sign), which is not accepted",
            if alg.ends_with("110") {
                "X25519"
            } else {
                "X448"
            }
        ))),
        "1.2.840.113549.1.1.1" => {
            let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err(refuse("the CSR's RSA key cannot be read".into()));
            };
            let bits = rsa_bits(rsa.modulus);
            if bits < RSA_MIN_BITS {
                return Err(refuse(format!(
                    "the CSR's key is RSA-{bits}: RSA keys need at least {RSA_MIN_BITS} bits"
                )));
            }
            if bits > RSA_MAX_BITS {
                return Err(refuse(format!(
                    "the CSR's key is RSA-{bits}: RSA keys of more than {RSA_MAX_BITS} bits are not accepted"
                )));
            }
            Ok(KeyKind::Rsa { bits })
        }
        "1.2.840.113549.1.1.10" => Err(refuse(
            "the CSR's key is an RSA-PSS-only key (id-RSASSA-PSS): RSA-PSS-only keys are not \
             supported; use an rsaEncryption key signed with PSS"
                .into(),
        )),
        "1.2.840.10040.4.1" => Err(refuse("the CSR's key is DSA, which is not accepted".into())),
        "1.2.840.10046.2.1" => Err(refuse(
            "the CSR's key is Diffie-Hellman, which is not accepted".into(),
        )),
        other => Err(refuse(format!(
            "the CSR's key is of type {other}, which is not accepted"
        ))),
    }
}

/// The kind of the key in a DER SubjectPublicKeyInfo.
pub fn classify_der(spki_der: &[u8]) -> Result<KeyKind, PkiError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| PkiError::BadInput(format!("the public key cannot be read: {e}")))?;
    classify(&spki)
}

fn rsa_bits(modulus: &[u8]) -> usize {
    let skip = modulus.iter().take_while(|b| **b == 0).count();
    match modulus.get(skip) {
        Some(first) => (modulus.len() - skip) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &str) -> Option<Hash> {
        match oid {
            "2.16.840.1.101.3.4.2.1" => Some(Hash::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(Hash::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// How a CSR's signature is to be checked once its algorithm is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// x509-parser's own verification (ring): ECDSA, Ed25519, RSA PKCS #1 v1.5.
    Standard,
    /// RSASSA-PSS, verified by `verify_pss`.
    Pss { hash: Hash, salt_len: usize },
}

fn weak_hash(oid: &str) -> Option<(&'static str, &'static str)> {
    Some(match oid {
        "1.2.840.113549.1.1.2" => ("MD2", "md2WithRSAEncryption"),
        "1.2.840.113549.1.1.3" => ("MD4", "md4WithRSAEncryption"),
        "1.2.840.113549.1.1.4" => ("MD5", "md5WithRSAEncryption"),
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => ("SHA-1", "sha1WithRSAEncryption"),
        "1.2.840.10045.4.1" => ("SHA-1", "ecdsa-with-SHA1"),
        "1.2.840.10040.4.3" => ("SHA-1", "dsa-with-SHA1"),
        "1.2.840.113549.1.1.14" => ("SHA-224", "sha224WithRSAEncryption"),
        "1.2.840.10045.4.3.1" => ("SHA-224", "ecdsa-with-SHA224"),
        _ => return None,
    })
}

/// Whether `alg` is an accepted signature for a key of `kind`, and how to check it.
pub fn signature_check(alg: &AlgorithmIdentifier, kind: KeyKind) -> Result<Check, PkiError> {
    let oid = alg.algorithm.to_id_string();
    if let Some((hash, name)) = weak_hash(&oid) {
        return Err(refuse(format!(
            "the CSR ({} key) is signed with {hash} ({name}): SHA-1, SHA-224 and MD5 signatures are refused; sign it with SHA-256 or stronger",
            kind.name()
        )));
    }
    let mismatch = |what: &str| {
        Err(refuse(format!(
            "the CSR is signed with {what}, which does not match its {} key",
            kind.name()
        )))
    };
    match (oid.as_str(), kind) {
        (
            "1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13",
            KeyKind::Rsa { .. },
        ) => Ok(Check::Standard),
        ("1.2.840.113549.1.1.10", KeyKind::Rsa { .. }) => pss_check(alg, kind),
        (
            "1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3",
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384,
        ) => Ok(Check::Standard),
        ("1.2.840.10045.4.3.4", KeyKind::EcdsaP256 | KeyKind::EcdsaP384) => Err(refuse(format!(
            "the CSR ({} key) is signed with ecdsa-with-SHA512, which hostca cannot verify; sign it with SHA-256 or SHA-384",
            kind.name()
        ))),
        ("1.3.101.112", KeyKind::Ed25519) => Ok(Check::Standard),
        ("1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13", _) => {
            mismatch("RSA PKCS #1 v1.5")
        }
        ("1.2.840.113549.1.1.10", _) => mismatch("RSA-PSS"),
        ("1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3" | "1.2.840.10045.4.3.4", _) => {
            mismatch("ECDSA")
        }
        ("1.3.101.112", _) => mismatch("Ed25519"),
        (other, _) => Err(refuse(format!(
            "the CSR ({} key) is signed with the algorithm {other}, which is not accepted",
            kind.name()
        ))),
    }
}

fn pss_check(alg: &AlgorithmIdentifier, kind: KeyKind) -> Result<Check, PkiError> {
    let bad = |why: &str| {
        Err(refuse(format!(
            "the CSR ({} key) is signed with RSA-PSS {why}",
            kind.name()
        )))
    };
    let Some(params) = alg.parameters.as_ref() else {
        return bad("without parameters, which means SHA-1: sign it with SHA-256 or stronger");
    };
    let Ok(params) = RsaSsaPssParams::try_from(params) else {
        return bad("with parameters that cannot be read");
    };
    let hash_oid = params.hash_algorithm_oid().to_id_string();
    let Some(hash) = Hash::from_oid(&hash_oid) else {
        let name = match hash_oid.as_str() {
            "1.3.14.3.2.26" => "SHA-1".to_string(),
            "2.16.840.1.101.3.4.2.4" => "SHA-224".to_string(),
            o => o.to_string(),
        };
        return bad(&format!(
            "over {name}: sign it with SHA-256, SHA-384 or SHA-512"
        ));
    };
    let Ok(mgf) = params.mask_gen_algorithm() else {
        return bad("with a mask generation function that cannot be read");
    };
    if mgf.mgf.to_id_string() != "1.2.840.113549.1.1.8"
        || Hash::from_oid(&mgf.hash.to_id_string()) != Some(hash)
    {
        return bad(
            "with a mask generation function other than MGF1 over the signature's own hash",
        );
    }
    if params.trailer_field() != 1 {
        return bad("with a trailer field other than 1 (RFC 4055)");
    }
    Ok(Check::Pss {
        hash,
        salt_len: params.salt_length() as usize,
    })
}

/// RSASSA-PSS-VERIFY (RFC 8017, 8.1.2) of `signature` over `message` by the rsaEncryption
/// key in `spki`.
pub fn verify_pss(
    spki: &SubjectPublicKeyInfo,
    hash: Hash,
    salt_len: usize,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
        return false;
    };
    let n = BigUint::from_bytes_be(rsa.modulus);
    let e = BigUint::from_bytes_be(rsa.exponent);
    // ring's bounds: a huge exponent would make the public operation slow, and e = 1
    // would make it the identity.
    let e_ok = e.bits() <= 33 && e.bit(0) && e > BigUint::from(1u8);
    let mod_bits = n.bits() as usize;
    if !e_ok || !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&mod_bits) {
        return false;
    }
    if signature.len() != mod_bits.div_ceil(8) {
        return false;
    }
    let s = BigUint::from_bytes_be(signature);
    if s >= n {
        return false;
    }
    let m = s.modpow(&e, &n).to_bytes_be();
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    if m.len() > em_len {
        return false;
    }
    let mut em = vec![0u8; em_len];
    em[em_len - m.len()..].copy_from_slice(&m);
    emsa_pss_verify(&em, em_bits, hash, salt_len, message)
}

/// EMSA-PSS-VERIFY (RFC 8017, 9.1.2) with MGF1 over the same hash.
fn emsa_pss_verify(em: &[u8], em_bits: usize, hash: Hash, s_len: usize, message: &[u8]) -> bool {
    let m_hash = hash.digest(&[message]);
    let h_len = m_hash.len();
    let em_len = em.len();
    if em_len < h_len + s_len + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at(em_len - h_len - 1);
    let h = &rest[..h_len];
    let top = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top != 0 {
        return false;
    }
    let mut db = mgf1(hash, h, masked_db.len());
    for (d, m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    db[0] &= top;
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|b| *b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[db.len() - s_len..];
    hash.digest(&[&[0u8; 8], &m_hash, salt]) == h
}

fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 0u32;
    while out.len() < len {
        out.extend_from_slice(&hash.digest(&[seed, &counter.to_be_bytes()]));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Whether `signature` over `message` verifies with the key of a DER SubjectPublicKeyInfo
/// (ring): ECDSA P-256 with SHA-256 and P-384 with SHA-384 (ASN.1 DER signatures), Ed25519,
/// RSA PKCS#1 v1.5 or PSS with SHA-256. The key proves possession in a re-keying renewal.
pub fn verify_signature(spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use ring::signature as sig;
    let Ok(kind) = classify_der(spki_der) else {
        return false;
    };
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(spki_der) else {
        return false;
    };
    let key = &spki.subject_public_key.data;
    let algorithms: &[&'static dyn sig::VerificationAlgorithm] = match kind {
        KeyKind::EcdsaP256 => &[&sig::ECDSA_P256_SHA256_ASN1],
        KeyKind::EcdsaP384 => &[&sig::ECDSA_P384_SHA384_ASN1],
        KeyKind::Ed25519 => &[&sig::ED25519],
        KeyKind::Rsa { .. } => &[
            &sig::RSA_PKCS1_2048_8192_SHA256,
            &sig::RSA_PSS_2048_8192_SHA256,
        ],
    };
    algorithms.iter().any(|alg| {
        sig::UnparsedPublicKey::new(*alg, key.as_ref())
            .verify(message, signature)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_bits_ignore_the_sign_byte() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(rsa_bits(&[0x01, 0, 0]), 17);
        assert_eq!(rsa_bits(&[]), 0);
    }

    #[test]
    fn mgf1_extends_past_one_block() {
        let m = mgf1(Hash::Sha256, b"seed", 70);
        assert_eq!(m.len(), 70);
        assert_eq!(&m[..32], Sha256::digest(b"seed\0\0\0\0").as_slice());
        assert_eq!(&m[32..64], Sha256::digest(b"seed\0\0\0\x01").as_slice());
    }
}
