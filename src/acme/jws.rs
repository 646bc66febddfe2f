//! The JSON Web Signatures (RFC 7515, flattened JSON) that carry every ACME request, as
//! RFC 8555 §6.2 restricts them: ES256, ES384, RS256 (2048 bits or more) and EdDSA
//! (Ed25519) account keys; a `jwk` or a `kid`, never both; `nonce` and `url` always. Also
//! the account key's thumbprint (RFC 7638) and the External Account Binding (§7.3.4), an
//! HS256 JWS over the account key made with a hostca token's value.
//!
//! This module checks signatures and shapes only; whether the nonce is fresh, the URL is
//! the one requested and the `kid` names a live account is for the caller.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Why a JWS was refused, as the RFC 8555 §6.7 problem type it answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// `malformed`: not a flattened JWS, bad base64url, a header that breaks the rules.
    #[error("{0}")]
    Malformed(String),
    /// `badSignatureAlgorithm`: an algorithm or key this server does not accept.
    #[error("{0}")]
    BadAlgorithm(String),
    /// `unauthorized` (or `malformed` for EAB): the signature does not verify.
    #[error("{0}")]
    BadSignature(String),
}

impl JwsError {
    /// The RFC 8555 problem type, without its `urn:ietf:params:acme:error:` prefix.
    pub fn problem_type(&self) -> &'static str {
        match self {
            JwsError::Malformed(_) => "malformed",
            JwsError::BadAlgorithm(_) => "badSignatureAlgorithm",
            JwsError::BadSignature(_) => "unauthorized",
        }
    }
}

/// The algorithms an account key may sign with.
pub const ACCEPTED_ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// A flattened JWS as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

/// Who signed: a new key (`jwk`: newAccount, revokeCert by the certificate's key) or an
/// account (`kid`: its URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Jwk(Jwk),
    Kid(String),
}

/// A request whose shape is right, not yet verified: the caller finds the key for a `kid`.
#[derive(Debug, Clone)]
pub struct Request {
    pub alg: String,
    pub nonce: String,
    pub url: String,
    pub signer: Signer,
    /// The payload's bytes (empty for POST-as-GET).
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// A public key as a JWK, with only the members that identify it (RFC 7638 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    Ec { crv: String, x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Okp { crv: String, x: Vec<u8> },
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwsError::Malformed(format!("{field} is not base64url without padding")))
}

fn text_member<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<&'a str, JwsError> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JwsError::Malformed(format!("{what} needs the text member {name}")))
}

impl Jwk {
    /// Reads a JWK; keys of a type or curve this server does not take are refused.
    pub fn from_json(v: &Value) -> Result<Jwk, JwsError> {
        let obj = v
            .as_object()
            .ok_or_else(|| JwsError::Malformed("jwk is not a JSON object".into()))?;
        match text_member(obj, "kty", "jwk")? {
            "EC" => {
                let crv = text_member(obj, "crv", "an EC jwk")?;
                let size = match crv {
                    "P-256" => 32,
                    "P-384" => 48,
                    other => {
                        return Err(JwsError::BadAlgorithm(format!(
                            "EC keys on curve {other} are not accepted: use P-256 or P-384"
                        )))
                    }
                };
                let x = b64("jwk x", text_member(obj, "x", "an EC jwk")?)?;
                let y = b64("jwk y", text_member(obj, "y", "an EC jwk")?)?;
                if x.len() != size || y.len() != size {
                    return Err(JwsError::Malformed(format!(
                        "the {crv} key's coordinates must be {size} bytes each"
                    )));
                }
                Ok(Jwk::Ec {
                    crv: crv.to_string(),
                    x,
                    y,
                })
            }
            "RSA" => {
                let n = b64("jwk n", text_member(obj, "n", "an RSA jwk")?)?;
                let e = b64("jwk e", text_member(obj, "e", "an RSA jwk")?)?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if bits < 2048 {
                    return Err(JwsError::BadAlgorithm(format!(
                        "RSA account keys need 2048 bits or more (this one has about {bits})"
                    )));
                }
                let strip = |b: Vec<u8>| b.into_iter().skip_while(|x| *x == 0).collect();
                Ok(Jwk::Rsa {
                    n: strip(n),
                    e: strip(e),
                })
            }
            "OKP" => match text_member(obj, "crv", "an OKP jwk")? {
                "Ed25519" => {
                    let x = b64("jwk x", text_member(obj, "x", "an OKP jwk")?)?;
                    if x.len() != 32 {
                        return Err(JwsError::Malformed("an Ed25519 key is 32 bytes".into()));
                    }
                    Ok(Jwk::Okp {
                        crv: "Ed25519".into(),
                        x,
                    })
                }
                other => Err(JwsError::BadAlgorithm(format!(
                    "OKP keys on curve {other} are not accepted: use Ed25519"
                ))),
            },
            other => Err(JwsError::BadAlgorithm(format!(
                "{other} keys are not accepted: use EC (P-256, P-384), RSA or OKP (Ed25519)"
            ))),
        }
    }

    /// The key of a certificate's SubjectPublicKeyInfo (DER), when it is a kind an account
    /// key may be: revokeCert signed by the certificate's own key is checked with it.
    pub fn from_spki_der(der: &[u8]) -> Option<Jwk> {
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der).ok()?;
        let strip = |b: &[u8]| {
            b.iter()
                .skip_while(|x| **x == 0)
                .copied()
                .collect::<Vec<u8>>()
        };
        match spki.parsed().ok()? {
            PublicKey::EC(point) => {
                let data = point.data();
                let crv = match data.len() {
                    65 => "P-256",
                    97 => "P-384",
                    _ => return None,
                };
                let half = (data.len() - 1) / 2;
                Some(Jwk::Ec {
                    crv: crv.into(),
                    x: data[1..1 + half].to_vec(),
                    y: data[1 + half..].to_vec(),
                })
            }
            PublicKey::RSA(rsa) => Some(Jwk::Rsa {
                n: strip(rsa.modulus),
                e: strip(rsa.exponent),
            }),
            PublicKey::Unknown(raw) if raw.len() == 32 => Some(Jwk::Okp {
                crv: "Ed25519".into(),
                x: raw.to_vec(),
            }),
            _ => None,
        }
    }

    /// The JWK as JSON, its identifying members only.
    pub fn to_json(&self) -> Value {
        let e = |b: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(b));
        match self {
            Jwk::Ec { crv, x, y } => {
                serde_json::json!({"kty": "EC", "crv": crv, "x": e(x), "y": e(y)})
            }
            Jwk::Rsa { n, e: exp } => serde_json::json!({"kty": "RSA", "n": e(n), "e": e(exp)}),
            Jwk::Okp { crv, x } => serde_json::json!({"kty": "OKP", "crv": crv, "x": e(x)}),
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order,
    /// without white space, as base64url. It names the account key everywhere.
    pub fn thumbprint(&self) -> String {
        let e = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let canonical = match self {
            Jwk::Ec { crv, x, y } => format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                e(x),
                e(y)
            ),
            Jwk::Rsa { n, e: exp } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, e(exp), e(n)),
            Jwk::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{}"}}"#, e(x)),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Whether `alg` is the algorithm this key signs with.
    fn matches(&self, alg: &str) -> bool {
        match self {
            Jwk::Ec { crv, .. } => {
                (crv == "P-256" && alg == "ES256") || (crv == "P-384" && alg == "ES384")
            }
            Jwk::Rsa { .. } => alg == "RS256",
            Jwk::Okp { .. } => alg == "EdDSA",
        }
    }

    /// Verifies `signature` over `message` with this key and `alg`.
    pub fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> Result<(), JwsError> {
        if !self.matches(alg) {
            return Err(JwsError::BadAlgorithm(format!(
                "the algorithm {alg} does not belong to this key"
            )));
        }
        let ok = match self {
            Jwk::Ec { crv, x, y } => {
                let point = [&[4u8][..], x, y].concat();
                let algorithm = if crv == "P-256" {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                UnparsedPublicKey::new(algorithm, point).verify(message, sig)
            }
            Jwk::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                sig,
            ),
            Jwk::Okp { x, .. } => {
                UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig)
            }
        };
        ok.map_err(|_| JwsError::BadSignature("the JWS signature does not verify".into()))
    }
}

/// Reads a flattened JWS and checks its protected header against RFC 8555 §6.2.
pub fn parse(body: &[u8]) -> Result<Request, JwsError> {
    parse_with(body, true)
}

/// The inner JWS of a keyChange (RFC 8555 §7.3.5): signed by the new key (`jwk`), with a
/// `url` and without a nonce. `nonce` is left empty.
pub fn parse_inner(body: &[u8]) -> Result<Request, JwsError> {
    parse_with(body, false)
}

fn parse_with(body: &[u8], outer: bool) -> Result<Request, JwsError> {
    let jws: Flattened = serde_json::from_slice(body).map_err(|e| {
        JwsError::Malformed(format!(
            "the body is not a flattened JWS (protected, payload, signature): {e}"
        ))
    })?;
    let header_bytes = b64("protected", &jws.protected)?;
    let header: Value = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwsError::Malformed("the protected header is not JSON".into()))?;
    let header = header
        .as_object()
        .ok_or_else(|| JwsError::Malformed("the protected header is not a JSON object".into()))?;
    let alg = text_member(header, "alg", "the protected header")?.to_string();
    if !ACCEPTED_ALGORITHMS.contains(&alg.as_str()) {
        return Err(JwsError::BadAlgorithm(format!(
            "the algorithm {alg} is not accepted: use {}",
            ACCEPTED_ALGORITHMS.join(", ")
        )));
    }
    let nonce = if outer {
        text_member(header, "nonce", "the protected header")?.to_string()
    } else if header.contains_key("nonce") {
        return Err(JwsError::Malformed(
            "the inner JWS of a key change must not carry a nonce".into(),
        ));
    } else {
        String::new()
    };
    let url = text_member(header, "url", "the protected header")?.to_string();
    let signer = match (header.get("jwk"), header.get("kid")) {
        (Some(jwk), None) => Signer::Jwk(Jwk::from_json(jwk)?),
        (None, Some(Value::String(kid))) => Signer::Kid(kid.clone()),
        (None, Some(_)) => return Err(JwsError::Malformed("kid is not text".into())),
        (Some(_), Some(_)) => {
            return Err(JwsError::Malformed(
                "the protected header has both jwk and kid: send one".into(),
            ))
        }
        (None, None) => {
            return Err(JwsError::Malformed(
                "the protected header has neither jwk nor kid".into(),
            ))
        }
    };
    Ok(Request {
        alg,
        nonce,
        url,
        signer,
        payload: b64("payload", &jws.payload)?,
        signing_input: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature: b64("signature", &jws.signature)?,
    })
}

impl Request {
    /// Verifies the signature with `key` (the header's `jwk`, or the account's key).
    pub fn verify(&self, key: &Jwk) -> Result<(), JwsError> {
        key.verify(&self.alg, &self.signing_input, &self.signature)
    }
}

/// Checks an External Account Binding: a flattened JWS, HS256 under the token's value,
/// whose `kid` is the token's name, whose `url` is the newAccount URL and whose payload is
/// the account's own key. Returns the `kid` so the caller can find the token; `mac_key`
/// looks the key up by that name (`None`: no such token).
pub fn verify_eab(
    eab: &Value,
    account_key: &Jwk,
    url: &str,
    mac_key: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> Result<String, JwsError> {
    let jws: Flattened = serde_json::from_value(eab.clone())
        .map_err(|_| JwsError::Malformed("externalAccountBinding is not a flattened JWS".into()))?;
    let header_bytes = b64("externalAccountBinding protected", &jws.protected)?;
    let header: Value = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwsError::Malformed("the externalAccountBinding header is not JSON".into()))?;
    let header = header.as_object().ok_or_else(|| {
        JwsError::Malformed("the externalAccountBinding header is not a JSON object".into())
    })?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwsError::Malformed(
            "the externalAccountBinding must be signed with HS256".into(),
        ));
    }
    if header.contains_key("nonce") {
        return Err(JwsError::Malformed(
            "the externalAccountBinding must not carry a nonce".into(),
        ));
    }
    if header.get("url").and_then(Value::as_str) != Some(url) {
        return Err(JwsError::Malformed(
            "the externalAccountBinding's url is not this newAccount URL".into(),
        ));
    }
    let kid = text_member(header, "kid", "the externalAccountBinding header")?.to_string();
    let payload = b64("externalAccountBinding payload", &jws.payload)?;
    let bound: Value = serde_json::from_slice(&payload).map_err(|_| {
        JwsError::Malformed("the externalAccountBinding payload is not a JWK".into())
    })?;
    if Jwk::from_json(&bound)? != *account_key {
        return Err(JwsError::Malformed(
            "the externalAccountBinding binds another key than the account's".into(),
        ));
    }
    let key = mac_key(&kid).ok_or_else(|| {
        JwsError::BadSignature(format!(
            "there is no token named {kid} to bind the account with"
        ))
    })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| JwsError::BadSignature("the token's key cannot be used".into()))?;
    mac.update(format!("{}.{}", jws.protected, jws.payload).as_bytes());
    let sig = b64("externalAccountBinding signature", &jws.signature)?;
    // verify_slice compares in constant time.
    mac.verify_slice(&sig).map_err(|_| {
        JwsError::BadSignature(format!(
            "the externalAccountBinding's MAC does not verify with token {kid}: check the HMAC key"
        ))
    })?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn enc(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn flattened(header: &Value, payload: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let protected = enc(header.to_string().as_bytes());
        let payload = enc(payload);
        let sig = sign(format!("{protected}.{payload}").as_bytes());
        serde_json::json!({"protected": protected, "payload": payload, "signature": enc(&sig)})
            .to_string()
            .into_bytes()
    }

    fn p256() -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = Jwk::Ec {
            crv: "P-256".into(),
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        (pair, jwk)
    }

    #[test]
    fn an_es256_request_with_its_jwk_verifies_and_a_changed_one_does_not() {
        let (pair, jwk) = p256();
        let rng = SystemRandom::new();
        let header = serde_json::json!({"alg": "ES256", "nonce": "n1", "url": "https://ca/acme/new-account", "jwk": jwk.to_json()});
        let body = flattened(&header, b"{}", |m| {
            pair.sign(&rng, m).unwrap().as_ref().to_vec()
        });
        let req = parse(&body).unwrap();
        assert_eq!(req.signer, Signer::Jwk(jwk.clone()));
        assert_eq!(
            (req.nonce.as_str(), req.url.as_str()),
            ("n1", "https://ca/acme/new-account")
        );
        req.verify(&jwk).unwrap();
        // The same signature over another payload: refused.
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        v["payload"] = Value::String(enc(b"{\"onlyReturnExisting\":true}"));
        let forged = parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(
            forged.verify(&jwk).unwrap_err().problem_type(),
            "unauthorized"
        );
        // Another key: refused.
        let (_, other) = p256();
        assert!(req.verify(&other).is_err());
    }

    #[test]
    fn an_eddsa_request_by_kid_verifies() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = Jwk::Okp {
            crv: "Ed25519".into(),
            x: pair.public_key().as_ref().to_vec(),
        };
        let header = serde_json::json!({"alg": "EdDSA", "nonce": "n", "url": "u", "kid": "https://ca/acme/account/7"});
        let body = flattened(&header, b"", |m| pair.sign(m).as_ref().to_vec());
        let req = parse(&body).unwrap();
        assert_eq!(req.signer, Signer::Kid("https://ca/acme/account/7".into()));
        assert!(req.payload.is_empty(), "POST-as-GET");
        req.verify(&jwk).unwrap();
        // A key of another type for the same algorithm name is refused as such.
        let (_, ec) = p256();
        assert_eq!(
            req.verify(&ec).unwrap_err().problem_type(),
            "badSignatureAlgorithm"
        );
    }

    #[test]
    fn headers_that_break_the_rules_are_malformed_or_bad_algorithms() {
        let (pair, jwk) = p256();
        let rng = SystemRandom::new();
        let sign = |m: &[u8]| pair.sign(&rng, m).unwrap().as_ref().to_vec();
        let cases = [
            (
                serde_json::json!({"alg": "HS256", "nonce": "n", "url": "u", "kid": "k"}),
                "badSignatureAlgorithm",
            ),
            (
                serde_json::json!({"alg": "none", "nonce": "n", "url": "u", "kid": "k"}),
                "badSignatureAlgorithm",
            ),
            (
                serde_json::json!({"alg": "ES256", "url": "u", "kid": "k"}),
                "malformed",
            ),
            (
                serde_json::json!({"alg": "ES256", "nonce": "n", "kid": "k"}),
                "malformed",
            ),
            (
                serde_json::json!({"alg": "ES256", "nonce": "n", "url": "u"}),
                "malformed",
            ),
            (
                serde_json::json!({"alg": "ES256", "nonce": "n", "url": "u", "kid": "k", "jwk": jwk.to_json()}),
                "malformed",
            ),
            (
                serde_json::json!({"alg": "ES256", "nonce": "n", "url": "u", "jwk": {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}}),
                "badSignatureAlgorithm",
            ),
            (
                serde_json::json!({"alg": "RS256", "nonce": "n", "url": "u", "jwk": {"kty": "RSA", "n": enc(&[0xC5; 128]), "e": "AQAB"}}),
                "badSignatureAlgorithm",
            ),
        ];
        for (header, want) in cases {
            let err = parse(&flattened(&header, b"{}", sign)).unwrap_err();
            assert_eq!(err.problem_type(), want, "{header}: {err}");
        }
        for body in [
            &b"[]"[..],
            b"{\"protected\":\"!!\",\"payload\":\"\",\"signature\":\"\"}",
            b"not json",
        ] {
            assert_eq!(parse(body).unwrap_err().problem_type(), "malformed");
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and its thumbprint.
        let jwk = Jwk::from_json(&serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    fn eab(kid: &str, url: &str, key: &[u8], bound: &Jwk) -> Value {
        let protected = enc(serde_json::json!({"alg": "HS256", "kid": kid, "url": url})
            .to_string()
            .as_bytes());
        let payload = enc(bound.to_json().to_string().as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{protected}.{payload}").as_bytes());
        let sig = enc(&mac.finalize().into_bytes());
        serde_json::json!({"protected": protected, "payload": payload, "signature": sig})
    }

    #[test]
    fn an_external_account_binding_made_with_the_tokens_value_verifies() {
        let (_, account) = p256();
        let value = [7u8; 15]; // a token's 120 bits
        let url = "https://ca/acme/new-account";
        let lookup = |kid: &str| (kid == "batch-7").then(|| value.to_vec());
        let e = eab("batch-7", url, &value, &account);
        assert_eq!(verify_eab(&e, &account, url, lookup).unwrap(), "batch-7");
        // Another token's value, another name, another key, another URL: refused.
        let wrong_mac = eab("batch-7", url, &[8u8; 15], &account);
        assert_eq!(
            verify_eab(&wrong_mac, &account, url, lookup)
                .unwrap_err()
                .problem_type(),
            "unauthorized"
        );
        let unknown = eab("nobody", url, &value, &account);
        assert!(verify_eab(&unknown, &account, url, lookup).is_err());
        let (_, other) = p256();
        assert_eq!(
            verify_eab(&e, &other, url, lookup)
                .unwrap_err()
                .problem_type(),
            "malformed"
        );
        assert!(verify_eab(&e, &account, "https://ca/acme/other", lookup).is_err());
    }
}
