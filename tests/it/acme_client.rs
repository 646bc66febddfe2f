//! A small ACME client for the tests and the benchmark (benches/enroll.rs includes this
//! file): it signs JWS with an ES256 key (ring), and lets a test
//! break any part of a request (nonce, url, signature, content type) that a real client
//! always gets right. certbot and lego (tests/acme-clients.sh) are the judges of the happy
//! paths; this one reaches the refusals.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// An answer: status, the headers ACME cares about, the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub nonce: Option<String>,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The problem type's last part (`badNonce`), or "" when the answer is no problem.
    pub fn problem(&self) -> String {
        if !self.content_type.starts_with("application/problem+json") {
            return String::new();
        }
        self.json()["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:ietf:params:acme:error:")
            .to_string()
    }

    pub fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or("").to_string()
    }
}

pub struct Acme {
    pub http: reqwest::Client,
    pub directory: Value,
    pub key: EcdsaKeyPair,
    /// The account URL once registered.
    pub kid: Option<String>,
    nonce: Option<String>,
}

pub fn new_key() -> (EcdsaKeyPair, Vec<u8>) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    (key, pkcs8.as_ref().to_vec())
}

pub fn jwk_of(key: &EcdsaKeyPair) -> Value {
    let point = key.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
}

pub fn thumbprint_of(key: &EcdsaKeyPair) -> String {
    let jwk = jwk_of(key);
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// A flattened JWS over `payload` (None: POST-as-GET) with `header`, signed by `key`.
pub fn sign(key: &EcdsaKeyPair, header: &Value, payload: Option<&Value>) -> Value {
    sign_with(header, payload, |m| {
        key.sign(&SystemRandom::new(), m).unwrap().as_ref().to_vec()
    })
}

/// A flattened JWS signed by any signer (the signature's bytes of the signing input).
pub fn sign_with(
    header: &Value,
    payload: Option<&Value>,
    signer: impl Fn(&[u8]) -> Vec<u8>,
) -> Value {
    let protected = b64(header.to_string().as_bytes());
    let payload = payload.map_or(String::new(), |p| b64(p.to_string().as_bytes()));
    let sig = signer(format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": b64(&sig)})
}

/// The External Account Binding for `key`, made with a token's name and value.
pub fn eab(key: &EcdsaKeyPair, token_name: &str, mac_key: &[u8], url: &str) -> Value {
    eab_for(&jwk_of(key), token_name, mac_key, url)
}

/// The External Account Binding for an account key given as its JWK.
pub fn eab_for(jwk: &Value, token_name: &str, mac_key: &[u8], url: &str) -> Value {
    let header = json!({"alg": "HS256", "kid": token_name, "url": url});
    let protected = b64(header.to_string().as_bytes());
    let payload = b64(jwk.to_string().as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(mac_key).unwrap();
    mac.update(format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": b64(&mac.finalize().into_bytes())})
}

/// A CSR (DER) for `names` with a new P-256 key, and that key's PEM.
pub fn csr_der(names: &[&str]) -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let csr = params.serialize_request(&key).unwrap();
    (csr.der().to_vec(), key.serialize_pem())
}

impl Acme {
    /// A client of the server at `base` (another process on the same database, say).
    pub async fn at(base: &str, http: reqwest::Client) -> Acme {
        let directory: Value = http
            .get(format!("{base}/acme/directory"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (key, _) = new_key();
        Acme {
            http,
            directory,
            key,
            kid: None,
            nonce: None,
        }
    }

    pub fn url(&self, name: &str) -> String {
        self.directory[name].as_str().unwrap().to_string()
    }

    pub async fn fresh_nonce(&mut self) -> String {
        if let Some(n) = self.nonce.take() {
            return n;
        }
        let r = self.http.head(self.url("newNonce")).send().await.unwrap();
        r.headers()["replay-nonce"].to_str().unwrap().to_string()
    }

    /// The protected header a correct client sends to `url`.
    pub async fn header(&mut self, url: &str, jwk: bool) -> Value {
        let nonce = self.fresh_nonce().await;
        let mut h = json!({"alg": "ES256", "nonce": nonce, "url": url});
        if jwk || self.kid.is_none() {
            h["jwk"] = jwk_of(&self.key);
        } else {
            h["kid"] = json!(self.kid.clone().unwrap());
        }
        h
    }

    /// Sends a body as `application/jose+json`; keeps the answer's nonce for the next one.
    pub async fn send(&mut self, url: &str, body: Vec<u8>, content_type: &str) -> Reply {
        let r = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let reply = Reply {
            status: r.status().as_u16(),
            location: header("location"),
            nonce: header("replay-nonce"),
            content_type: header("content-type").unwrap_or_default(),
            body: String::new(),
        };
        let body = r.text().await.unwrap();
        self.nonce = reply.nonce.clone();
        Reply { body, ..reply }
    }

    /// Sends a JWS as a client would (`application/jose+json`).
    pub async fn send_jws(&mut self, url: &str, jws: Value) -> Reply {
        self.send(url, jws.to_string().into_bytes(), "application/jose+json")
            .await
    }

    /// A correct request to `url` (a kid once registered).
    pub async fn post(&mut self, url: &str, payload: Option<Value>) -> Reply {
        let header = self.header(url, false).await;
        let jws = sign(&self.key, &header, payload.as_ref());
        self.send_jws(url, jws).await
    }

    /// newAccount with a token as External Account Binding (`None`: without one).
    pub async fn register(&mut self, token: Option<(&str, &str)>) -> Reply {
        let url = self.url("newAccount");
        let mut payload =
            json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@example.com"]});
        if let Some((name, value)) = token {
            let mac = hostca::acme::eab_mac_key(value).expect("a token value");
            payload["externalAccountBinding"] = eab(&self.key, name, &mac, &url);
        }
        let header = self.header(&url, true).await;
        let jws = sign(&self.key, &header, Some(&payload));
        let r = self.send_jws(&url, jws).await;
        if r.status == 201 || r.status == 200 {
            self.kid = r.location.clone();
        }
        r
    }

    pub async fn new_order(&mut self, names: &[&str]) -> Reply {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let url = self.url("newOrder");
        self.post(&url, Some(json!({ "identifiers": ids }))).await
    }

    /// Orders `names`, finalizes with a new key and downloads the chain: Ok(PEM chain), or
    /// the first refusal.
    pub async fn issue(&mut self, names: &[&str]) -> Result<String, Reply> {
        let order = self.new_order(names).await;
        if order.status != 201 {
            return Err(order);
        }
        let (der, _) = csr_der(names);
        self.finalize(&order.json(), &der).await
    }

    pub async fn finalize(&mut self, order: &Value, csr: &[u8]) -> Result<String, Reply> {
        let url = order["finalize"].as_str().unwrap().to_string();
        let done = self.post(&url, Some(json!({ "csr": b64(csr) }))).await;
        if done.status != 200 {
            return Err(done);
        }
        let cert_url = done.json()["certificate"].as_str().unwrap().to_string();
        let chain = self.post(&cert_url, None).await;
        if chain.status != 200 {
            return Err(chain);
        }
        Ok(chain.body)
    }
}
