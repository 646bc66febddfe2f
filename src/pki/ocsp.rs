//! OCSP (RFC 6960, in the profile of RFC 5019): reading requests and signing responses.
//!
//! Written as DER by hand like the CRL (and with its DER helpers): a request is a few
//! nested SEQUENCEs, a response one fixed shape. Responses are signed by a delegated
//! responder: a P-256 key made in memory by each server process, certified by the CA for
//! id-kp-OCSPSigning alone with id-pkix-ocsp-nocheck, sent in the response's `certs`.
//! Nothing here touches the database.

use chrono::{Duration, NaiveDateTime};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber, SigningKey,
};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::ca::Ca;
use super::crl::{
    generalized_time, integer, reason_code, signature_algorithm, tlv, ENUMERATED, EXPLICIT_0,
    OCTET_STRING, SEQUENCE,
};
use super::{random_serial, serial_hex, to_offset, PkiError, Reason};

/// How long a response is good for (its nextUpdate after its thisUpdate), unless the
/// server was started with `--ocsp-validity-hours`.
pub const RESPONSE_VALIDITY_HOURS: i64 = 24;
/// How long a responder certificate runs; a new one is made when a third is left.
pub const RESPONDER_VALIDITY_DAYS: i64 = 30;
/// At most this many CertIDs in one request.
pub const MAX_REQUESTS: usize = 8;
/// RFC 8954: a nonce of more than 32 octets is refused.
pub const MAX_NONCE: usize = 32;

/// OCSPResponseStatus values for answers without a signed body (RFC 6960, 4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorStatus {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    Unauthorized = 6,
}

/// An unsigned OCSPResponse carrying only an error status.
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    vec![SEQUENCE, 3, ENUMERATED, 1, status as u8]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_NONCE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
/// id-pkix-ocsp-basic, as a whole OBJECT IDENTIFIER TLV.
const OID_BASIC: &[u8] = &[
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01,
];

impl HashAlg {
    pub const ALL: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];

    /// Its name in the `ocsp_responses` table.
    pub fn key(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// One CertID of a request (RFC 6960, 4.1.1), with its DER as sent (echoed in the answer).
#[derive(Clone, Debug)]
pub struct CertId {
    pub hash: HashAlg,
    pub name_hash: Vec<u8>,
    pub key_hash: Vec<u8>,
    /// The serial as `serial_hex` writes it (how the certificates table stores it).
    pub serial: String,
    pub raw: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct OcspRequest {
    pub ids: Vec<CertId>,
    /// The nonce extension's extnValue, as sent (echoed as it is).
    pub nonce: Option<Vec<u8>>,
}

/// One DER TLV: (tag, content, the whole TLV, what follows).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The first TLV of `input`. Definite lengths only.
fn tlv_of(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags appear nowhere in OCSP
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((tag, &rest[..len], &input[..header + len], &rest[len..]))
}

/// The content of a TLV that must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, _, rest) = tlv_of(input)?;
    (t == tag).then_some((content, rest))
}

/// Reads an OCSPRequest. `None`: malformed (answered with malformedRequest). A request's
/// signature, if any, is ignored: who asks does not change the answer.
pub fn parse_request(der: &[u8]) -> Option<OcspRequest> {
    let (request, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (mut tbs, _signature) = expect(request, SEQUENCE)?;
    if let Some((0xa0, version, _, rest)) = tlv_of(tbs) {
        if version != [0x02, 0x01, 0x00] {
            return None;
        }
        tbs = rest;
    }
    if let Some((0xa1, _, _, rest)) = tlv_of(tbs) {
        tbs = rest; // requestorName
    }
    let (mut list, mut rest) = expect(tbs, SEQUENCE)?;
    let mut ids = Vec::new();
    while !list.is_empty() {
        let (one, more) = expect(list, SEQUENCE)?;
        list = more;
        ids.push(cert_id(one)?);
        if ids.len() > MAX_REQUESTS {
            return None;
        }
    }
    if ids.is_empty() {
        return None;
    }
    let mut nonce = None;
    if let Some((0xa2, extensions, _, more)) = tlv_of(rest) {
        rest = more;
        let (mut list, tail) = expect(extensions, SEQUENCE)?;
        if !tail.is_empty() {
            return None;
        }
        while !list.is_empty() {
            let (ext, more) = expect(list, SEQUENCE)?;
            list = more;
            let (oid, mut fields) = expect(ext, 0x06)?;
            if let Some((0x01, _, _, more)) = tlv_of(fields) {
                fields = more; // critical
            }
            let (value, tail) = expect(fields, OCTET_STRING)?;
            if !tail.is_empty() {
                return None;
            }
            if oid == OID_NONCE {
                // Nonce ::= OCTET STRING inside the extnValue (RFC 8954: 1 to 32 octets).
                let (inner, tail) = expect(value, OCTET_STRING)?;
                if inner.is_empty() || inner.len() > MAX_NONCE || !tail.is_empty() {
                    return None;
                }
                nonce = Some(value.to_vec());
            }
        }
    }
    if !rest.is_empty() {
        return None;
    }
    Some(OcspRequest { ids, nonce })
}

/// Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] OPTIONAL }
fn cert_id(request: &[u8]) -> Option<CertId> {
    let (_, id, raw, _) = tlv_of(request).filter(|t| t.0 == SEQUENCE)?;
    let (alg, rest) = expect(id, SEQUENCE)?;
    let (oid, params) = expect(alg, 0x06)?;
    if !(params.is_empty() || params == [0x05, 0x00]) {
        return None;
    }
    let hash = match oid {
        OID_SHA1 => HashAlg::Sha1,
        OID_SHA256 => HashAlg::Sha256,
        _ => return None,
    };
    let (name_hash, rest) = expect(rest, OCTET_STRING)?;
    let (key_hash, rest) = expect(rest, OCTET_STRING)?;
    let (serial, rest) = expect(rest, 0x02)?;
    let size = if hash == HashAlg::Sha1 { 20 } else { 32 };
    if name_hash.len() != size || key_hash.len() != size || serial.is_empty() || serial.len() > 20 {
        return None;
    }
    if !rest.is_empty() {
        return None;
    }
    Some(CertId {
        hash,
        name_hash: name_hash.to_vec(),
        key_hash: key_hash.to_vec(),
        serial: serial_hex(serial),
        raw: raw.to_vec(),
    })
}

/// What a CertID names a CA by: the hashes of its subject and of its public key.
#[derive(Clone, Debug)]
pub struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl IssuerHashes {
    pub fn of(ca: &Ca) -> Option<IssuerHashes> {
        let key = public_key_bits(&ca.spki_der)?;
        let pair = |alg: HashAlg| (alg.digest(&ca.subject_der), alg.digest(key));
        Some(IssuerHashes {
            sha1: pair(HashAlg::Sha1),
            sha256: pair(HashAlg::Sha256),
        })
    }

    /// Whether `id` names this CA. Not secret: compared plainly.
    pub fn matches(&self, id: &CertId) -> bool {
        let (name, key) = match id.hash {
            HashAlg::Sha1 => &self.sha1,
            HashAlg::Sha256 => &self.sha256,
        };
        *name == id.name_hash && *key == id.key_hash
    }
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo (what issuerKeyHash hashes).
fn public_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (info, _) = expect(spki, SEQUENCE)?;
    let (_, rest) = expect(info, SEQUENCE)?;
    let (bits, _) = expect(rest, 0x03)?;
    bits.get(1..)
}

/// A delegated responder: its key (in memory only) and its certificate from the CA.
pub struct Responder {
    pub issuer_id: i64,
    key: KeyPair,
    pub cert_der: Vec<u8>,
    pub serial: String,
    /// SHA-1 of its public key: the responderID byKey.
    key_hash: Vec<u8>,
    pub not_after: NaiveDateTime,
}

impl Responder {
    /// A new key and its responder certificate from `ca`: EKU id-kp-OCSPSigning only,
    /// id-pkix-ocsp-nocheck, key usage digitalSignature, `RESPONDER_VALIDITY_DAYS` (never
    /// past the CA's own end).
    pub fn issue(ca: &Ca, now: NaiveDateTime) -> Result<Responder, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::failed("OCSP responder key generation", e))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("hostca OCSP Responder {}", ca.id),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5],
            vec![0x05, 0x00],
        )];
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let now = whole_seconds(now);
        let not_after = (now + Duration::days(RESPONDER_VALIDITY_DAYS)).min(ca.not_after);
        params.not_before = to_offset(now - Duration::minutes(5));
        params.not_after = to_offset(not_after);
        let cert = params
            .signed_by(&key, ca.issuer()?)
            .map_err(|e| PkiError::failed("signing the OCSP responder certificate", e))?;
        Ok(Responder {
            issuer_id: ca.id,
            key_hash: Sha1::digest(key.der_bytes()).to_vec(),
            key,
            cert_der: cert.der().to_vec(),
            serial: serial_hex(&serial),
            not_after,
        })
    }

    /// Whether it should be replaced: a third of its life or less is left.
    pub fn due(&self, now: NaiveDateTime) -> bool {
        self.not_after - now < Duration::days(RESPONDER_VALIDITY_DAYS / 3)
    }
}

fn whole_seconds(t: NaiveDateTime) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(t.and_utc().timestamp(), 0)
        .map(|d| d.naive_utc())
        .unwrap_or(t)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked { at: NaiveDateTime, reason: Reason },
    Unknown,
}

impl CertStatus {
    /// The status as one line of text: what a stored response is checked against.
    pub fn text(self) -> String {
        match self {
            CertStatus::Good => "good".into(),
            CertStatus::Unknown => "unknown".into(),
            CertStatus::Revoked { at, reason } => format!(
                "revoked {} {}",
                whole_seconds(at).and_utc().timestamp(),
                reason.key()
            ),
        }
    }
}

/// One SingleResponse to sign.
pub struct Single<'a> {
    pub id: &'a CertId,
    pub status: CertStatus,
}

/// A signed OCSPResponse and its times.
pub struct Signed {
    pub der: Vec<u8>,
    pub this_update: NaiveDateTime,
    pub next_update: NaiveDateTime,
}

/// Signs a successful OCSPResponse (a BasicOCSPResponse) for `singles`, echoing `nonce`,
/// good for `validity` (never past the responder's certificate).
pub fn sign(
    responder: &Responder,
    singles: &[Single],
    now: NaiveDateTime,
    validity: Duration,
    nonce: Option<&[u8]>,
) -> Result<Signed, PkiError> {
    let now = whole_seconds(now);
    let next = (now + validity).min(responder.not_after);
    let mut data = Vec::with_capacity(256);
    // responderID byKey: [2] EXPLICIT KeyHash (OCTET STRING)
    let mut key_hash = Vec::with_capacity(22);
    tlv(&mut key_hash, OCTET_STRING, &responder.key_hash);
    tlv(&mut data, 0xa2, &key_hash);
    generalized_time(&mut data, now);
    let mut list = Vec::with_capacity(128 * singles.len());
    let mut one = Vec::with_capacity(128);
    for s in singles {
        one.clear();
        one.extend_from_slice(&s.id.raw);
        match s.status {
            CertStatus::Good => one.extend_from_slice(&[0x80, 0x00]),
            CertStatus::Unknown => one.extend_from_slice(&[0x82, 0x00]),
            CertStatus::Revoked { at, reason } => {
                let mut info = Vec::with_capacity(24);
                generalized_time(&mut info, whole_seconds(at));
                if let Some(code) = reason_code(reason) {
                    info.extend_from_slice(&[EXPLICIT_0, 3, ENUMERATED, 1, code]);
                }
                tlv(&mut one, 0xa1, &info);
            }
        }
        generalized_time(&mut one, now);
        let mut next_time = Vec::with_capacity(17);
        generalized_time(&mut next_time, next);
        tlv(&mut one, EXPLICIT_0, &next_time);
        tlv(&mut list, SEQUENCE, &one);
    }
    tlv(&mut data, SEQUENCE, &list);
    if let Some(value) = nonce {
        let mut ext = OID_NONCE_TLV.to_vec();
        tlv(&mut ext, OCTET_STRING, value);
        let mut exts = Vec::new();
        tlv(&mut exts, SEQUENCE, &ext);
        let mut wrapped = Vec::new();
        tlv(&mut wrapped, SEQUENCE, &exts);
        tlv(&mut data, 0xa1, &wrapped);
    }
    let mut tbs = Vec::with_capacity(data.len() + 4);
    tlv(&mut tbs, SEQUENCE, &data);
    let algorithm = signature_algorithm(&responder.key)?;
    let signature = responder
        .key
        .sign(&tbs)
        .map_err(|e| PkiError::failed("signing an OCSP response", e))?;
    let mut basic = tbs;
    basic.extend_from_slice(algorithm);
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&signature);
    tlv(&mut basic, 0x03, &bits);
    let mut certs = Vec::with_capacity(responder.cert_der.len() + 8);
    tlv(&mut certs, SEQUENCE, &responder.cert_der);
    tlv(&mut basic, EXPLICIT_0, &certs);
    let mut basic_der = Vec::with_capacity(basic.len() + 4);
    tlv(&mut basic_der, SEQUENCE, &basic);
    // responseBytes [0] EXPLICIT SEQUENCE { id-pkix-ocsp-basic, OCTET STRING }
    let mut bytes = OID_BASIC.to_vec();
    tlv(&mut bytes, OCTET_STRING, &basic_der);
    let mut response_bytes = Vec::with_capacity(bytes.len() + 4);
    tlv(&mut response_bytes, SEQUENCE, &bytes);
    let mut body = vec![ENUMERATED, 1, 0]; // successful
    tlv(&mut body, EXPLICIT_0, &response_bytes);
    let mut der = Vec::with_capacity(body.len() + 4);
    tlv(&mut der, SEQUENCE, &body);
    Ok(Signed {
        der,
        this_update: now,
        next_update: next,
    })
}

const OID_NONCE_TLV: &[u8] = &[
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
];

impl CertId {
    /// The CertID of the certificate numbered `serial` (big-endian bytes) from `issuer`,
    /// as `openssl ocsp` writes it (the hash algorithm's parameters NULL): what a response
    /// made before anyone asked names.
    pub fn of(hash: HashAlg, issuer: &Ca, serial: &[u8]) -> CertId {
        let key = public_key_bits(&issuer.spki_der).unwrap_or_default();
        let mut id = Vec::new();
        let mut alg = Vec::new();
        match hash {
            HashAlg::Sha1 => tlv(&mut alg, 0x06, OID_SHA1),
            HashAlg::Sha256 => tlv(&mut alg, 0x06, OID_SHA256),
        }
        alg.extend_from_slice(&[0x05, 0x00]);
        tlv(&mut id, SEQUENCE, &alg);
        let name_hash = hash.digest(&issuer.subject_der);
        let key_hash = hash.digest(key);
        tlv(&mut id, OCTET_STRING, &name_hash);
        tlv(&mut id, OCTET_STRING, &key_hash);
        integer(&mut id, serial);
        let mut raw = Vec::new();
        tlv(&mut raw, SEQUENCE, &id);
        CertId {
            hash,
            name_hash,
            key_hash,
            serial: serial_hex(serial),
            raw,
        }
    }
}

/// A request for one certificate (for tests and the benchmark): `openssl ocsp -reqout`
/// makes the same shape.
pub fn request_der(hash: HashAlg, issuer: &Ca, serial: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
    let cert_id = CertId::of(hash, issuer, serial).raw;
    let mut request = Vec::new();
    tlv(&mut request, SEQUENCE, &cert_id);
    let mut tbs = Vec::new();
    tlv(&mut tbs, SEQUENCE, &request);
    if let Some(n) = nonce {
        let mut inner = Vec::new();
        tlv(&mut inner, OCTET_STRING, n);
        let mut ext = OID_NONCE_TLV.to_vec();
        tlv(&mut ext, OCTET_STRING, &inner);
        let mut exts = Vec::new();
        tlv(&mut exts, SEQUENCE, &ext);
        let mut wrapped = Vec::new();
        tlv(&mut wrapped, SEQUENCE, &exts);
        tlv(&mut tbs, 0xa2, &wrapped);
    }
    let mut tbs_der = Vec::new();
    tlv(&mut tbs_der, SEQUENCE, &tbs);
    let mut der = Vec::new();
    tlv(&mut der, SEQUENCE, &tbs_der);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncations_are_malformed_not_panics() {
        assert!(parse_request(b"").is_none());
        assert!(parse_request(b"\x30\x84\xff\xff\xff\xff").is_none());
        assert!(parse_request(&[0x30; 64]).is_none());
        let ca = Ca::create_root(
            "CN=test",
            crate::pki::signer::CaKey::File(
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            ),
            crate::db::now(),
            30,
        )
        .unwrap();
        let der = request_der(HashAlg::Sha1, &ca, &[0x40, 1, 2], Some(&[7; 16]));
        let parsed = parse_request(&der).unwrap();
        assert_eq!(parsed.ids[0].serial, "400102");
        assert!(IssuerHashes::of(&ca).unwrap().matches(&parsed.ids[0]));
        for n in 0..der.len() {
            assert!(parse_request(&der[..n]).is_none());
        }
    }
}
