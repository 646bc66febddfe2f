//! ACME (RFC 8555, RFC 9773) by hostca's rules: an account is a host's ACME client, bound
//! by a token given as its External Account Binding (one use of the token per account);
//! the names the rules already allow get valid authorizations at once (the token is the
//! proof), other names an http-01 or tls-alpn-01 challenge; finalize issues through the enrollment steps
//! (`enroll::issue_for_account`). Every function takes the request as it came (body and
//! URL) and answers an `Answer` or a `Problem`; `web::acme` adds the nonce and headers.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::{self, Event};
use super::{hosts, mappings, Ctx};
use crate::acme::jws::{self, Jwk, Signer};
use crate::acme::{Problem, ProblemKind};
use crate::db::{self, DbConn, WriteTx};
use crate::error::AppError;
use crate::models::acme::{
    AcmeAccount, AcmeAccountStatus, AcmeAuthorization, AcmeAuthzStatus, AcmeBinding, AcmeOrder,
    AcmeOrderStatus, ChallengeType, NewAcmeAccount, NewAcmeAuthorization, NewAcmeOrder,
};
use crate::models::certificate::Certificate;
use crate::models::host::Host;
use crate::models::host_mapping::MappingState;
use crate::models::kinds::AuditCategory;
use crate::models::nonce::Nonce;
use crate::models::settings::{SecurityLevel, Settings};
use crate::models::token::{Token, TokenKind};
use crate::pki::Reason;

/// The `purpose` of used ACME nonces in the shared `nonces` table.
pub const NONCE_PURPOSE: &str = "acme";
/// How long a nonce may wait for its request (and its use is remembered).
const NONCE_MINUTES: i64 = 60;
/// How long an order (and its authorizations) may wait to be finalized.
const ORDER_HOURS: i64 = 24;
/// Most names one order may ask for.
const MAX_IDENTIFIERS: usize = 20;
/// When an ACME client should ask again about a certificate's renewal window (RFC 9773).
pub const RENEWAL_INFO_RETRY_SECONDS: u64 = 6 * 3600;

/// A request as it reached the server.
pub struct Incoming {
    /// The flattened JWS.
    pub body: Vec<u8>,
    /// The URL it was sent to, as this server names it (public URL and path).
    pub url: String,
    pub peer: Option<IpAddr>,
}

/// What an answer carries besides its status.
pub enum Body {
    Json(Value),
    /// A certificate chain (`application/pem-certificate-chain`).
    Pem(String),
    Empty,
}

pub struct Answer {
    pub status: u16,
    pub body: Body,
    pub location: Option<String>,
    /// `Link` headers: (URL, relation).
    pub links: Vec<(String, &'static str)>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Body::Json(body),
            location: None,
            links: Vec::new(),
            retry_after: None,
        }
    }

    fn at(mut self, location: String) -> Answer {
        self.location = Some(location);
        self
    }

    fn link(mut self, url: String, rel: &'static str) -> Answer {
        self.links.push((url, rel));
        self
    }
}

/// The URLs of this server's ACME resources.
pub struct Urls {
    base: String,
}

impl Urls {
    pub fn new(ctx: &Ctx) -> Urls {
        Urls {
            base: format!("{}/acme", ctx.site.public_url),
        }
    }
    pub fn directory(&self) -> String {
        format!("{}/directory", self.base)
    }
    pub fn account(&self, id: &str) -> String {
        format!("{}/account/{id}", self.base)
    }
    pub fn account_orders(&self, id: &str) -> String {
        format!("{}/account/{id}/orders", self.base)
    }
    pub fn order(&self, id: &str) -> String {
        format!("{}/order/{id}", self.base)
    }
    pub fn finalize(&self, id: &str) -> String {
        format!("{}/order/{id}/finalize", self.base)
    }
    pub fn authz(&self, id: &str) -> String {
        format!("{}/authz/{id}", self.base)
    }
    pub fn challenge(&self, id: &str, kind: ChallengeType) -> String {
        format!("{}/challenge/{id}/{}", self.base, kind.key())
    }
    pub fn certificate(&self, serial: &str) -> String {
        format!("{}/cert/{serial}", self.base)
    }
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

/// The directory (RFC 8555 §7.1.1): EAB is required unless the security level is medium.
pub fn directory(ctx: &Ctx) -> Result<Value, Problem> {
    let settings = Settings::load(&mut *db::get(&ctx.pool)?)?;
    let urls = Urls::new(ctx);
    Ok(json!({
        "newNonce": urls.path("new-nonce"),
        "newAccount": urls.path("new-account"),
        "newOrder": urls.path("new-order"),
        "revokeCert": urls.path("revoke-cert"),
        "keyChange": urls.path("key-change"),
        "renewalInfo": urls.path("renewal-info"),
        "meta": {
            "externalAccountRequired": settings.security_level != SecurityLevel::Medium,
            "website": format!("{}/security/ca", ctx.site.public_url),
        }
    }))
}

/// A fresh nonce, made without touching the database: 16 random bytes and the time it
/// expires, with a MAC under the data directory's key (shared by every server process on
/// the database), base64url. Its use is a row (`take_nonce`).
pub fn new_nonce(ctx: &Ctx) -> String {
    let mut bytes = [0u8; NONCE_BYTES];
    rand::fill(&mut bytes[..16]);
    let expires = (db::now() + Duration::minutes(NONCE_MINUTES))
        .and_utc()
        .timestamp();
    bytes[16..24].copy_from_slice(&expires.to_be_bytes());
    let mac = nonce_mac(ctx, &bytes[..24]);
    bytes[24..].copy_from_slice(&mac);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Random part, expiry, MAC.
const NONCE_BYTES: usize = 16 + 8 + 16;

fn nonce_mac(ctx: &Ctx, body: &[u8]) -> [u8; 16] {
    let digest = ctx
        .token_key
        .digest(&format!("acme-nonce:{}", hex::encode(body)));
    let mut mac = [0u8; 16];
    hex::decode_to_slice(&digest[..32], &mut mac).expect("a digest is hex");
    mac
}

/// Uses a nonce: it must be one of ours (MAC), unexpired, and not used before: its use is
/// inserted under its digest (the primary key), so that whichever process sees it first
/// takes it and every later use is refused. The row goes when the nonce would have expired.
fn take_nonce(ctx: &Ctx, nonce: &str) -> Result<bool, Problem> {
    use subtle::ConstantTimeEq;
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
        return Ok(false);
    };
    if bytes.len() != NONCE_BYTES || !bool::from(nonce_mac(ctx, &bytes[..24]).ct_eq(&bytes[24..])) {
        return Ok(false);
    }
    let expires = i64::from_be_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let Some(expires_at) = chrono::DateTime::from_timestamp(expires, 0).map(|t| t.naive_utc())
    else {
        return Ok(false);
    };
    let now = db::now();
    if expires_at <= now {
        return Ok(false);
    }
    let used = Nonce {
        digest: super::renewal::nonce_digest(nonce),
        purpose: NONCE_PURPOSE.into(),
        host_id: None,
        created_at: now,
        expires_at,
    };
    // Through the group writer: the uses of many concurrent requests commit together. A
    // used nonce is a unique violation, which rolls back this request's savepoint only.
    match ctx.writer.write(move |c| Ok(Nonce::insert(c, &used)?)) {
        Ok(_) => Ok(true),
        Err(AppError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Who signed a verified request.
enum Signed {
    Account(AcmeAccount, Jwk),
    Key(Jwk),
}

struct Verified {
    payload: Vec<u8>,
    signed: Signed,
}

impl Verified {
    fn account(self) -> Result<(AcmeAccount, Vec<u8>), Problem> {
        match self.signed {
            Signed::Account(a, _) => Ok((a, self.payload)),
            Signed::Key(_) => Err(Problem::malformed(
                "this request must be signed by an account (a kid header), not a jwk",
            )),
        }
    }

    /// The payload as `T`; an empty payload (POST-as-GET) as `T::default()`.
    fn payload<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Problem> {
        serde_json::from_slice(payload)
            .map_err(|e| Problem::malformed(format!("the payload is not the JSON expected: {e}")))
    }
}

/// Checks a request: the JWS, its `url` against where it was sent, its signer (a live
/// account's key or, where `jwk_ok`, its own key) and its signature, then uses its nonce.
/// The connection it reads the account with is given back before the nonce is used: that
/// goes through the group writer, which needs a pooled connection of its own.
fn verify(ctx: &Ctx, req: &Incoming, jwk_ok: bool) -> Result<Verified, Problem> {
    let parsed = jws::parse(&req.body)?;
    if parsed.url != req.url {
        return Err(Problem::unauthorized(format!(
            "the JWS url header ({}) is not the URL this request was sent to ({})",
            shown(&parsed.url),
            req.url
        )));
    }
    let urls = Urls::new(ctx);
    let signed = match &parsed.signer {
        Signer::Jwk(jwk) if jwk_ok => Signed::Key(jwk.clone()),
        Signer::Jwk(_) => {
            return Err(Problem::malformed(
                "this request must be signed by an account: send its URL as kid, not a jwk",
            ))
        }
        Signer::Kid(_) if jwk_ok && req.url == urls.path("new-account") => {
            return Err(Problem::malformed(
                "newAccount must be signed with the new account's key as jwk, not a kid",
            ))
        }
        Signer::Kid(kid) => {
            let found =
                match kid.strip_prefix(&format!("{}/", urls.account("").trim_end_matches('/'))) {
                    Some(id) => AcmeAccount::find(&mut *db::get(&ctx.pool)?, id)?,
                    None => None,
                };
            let account = found.ok_or_else(|| {
                Problem::new(
                    ProblemKind::AccountDoesNotExist,
                    format!(
                        "no account has the URL {}: register with newAccount first",
                        shown(kid)
                    ),
                )
            })?;
            if account.status != AcmeAccountStatus::Valid {
                return Err(Problem::unauthorized(format!(
                    "the account {} is {}: register a new account",
                    account.account_id,
                    account.status.key()
                )));
            }
            let jwk = account_key(&account)?;
            Signed::Account(account, jwk)
        }
    };
    let key = match &signed {
        Signed::Account(_, k) | Signed::Key(k) => k,
    };
    parsed.verify(key)?;
    let used = take_nonce(ctx, &parsed.nonce)?;
    if !used {
        return Err(Problem::new(
            ProblemKind::BadNonce,
            "the nonce is unknown, used or expired: take the fresh one in this answer's Replay-Nonce header",
        ));
    }
    Ok(Verified {
        payload: parsed.payload,
        signed,
    })
}

fn account_key(account: &AcmeAccount) -> Result<Jwk, Problem> {
    let value: Value = serde_json::from_str(&account.jwk)
        .map_err(|e| AppError::internal_from("an ACME account's stored key is not JSON", e))?;
    Jwk::from_json(&value).map_err(|e| {
        Problem::from(AppError::internal_from(
            "an ACME account's stored key cannot be read",
            e,
        ))
    })
}

/// At most 80 characters of something a client sent, for a message.
fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

fn rfc3339(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn random_id() -> String {
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Records a refusal worth an administrator's attention (aggregated per source and minute).
fn refused(ctx: &Ctx, req: &Incoming, action: &'static str, target: &str, p: &Problem) {
    audit::refused(
        ctx,
        req.peer,
        AuditCategory::Cert,
        action,
        target,
        format!("ACME {action} refused ({}): {}", p.kind.name(), p.detail),
    );
}

fn account_json(ctx: &Ctx, a: &AcmeAccount) -> Value {
    let contact: Vec<&str> = a.contact.split(',').filter(|c| !c.is_empty()).collect();
    json!({
        "status": a.status.key(),
        "contact": contact,
        "orders": Urls::new(ctx).account_orders(&a.account_id),
        "termsOfServiceAgreed": true,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NewAccountPayload {
    #[serde(default)]
    contact: Option<Vec<String>>,
    #[serde(default)]
    only_return_existing: bool,
    #[serde(default)]
    external_account_binding: Option<Value>,
}

fn contact_text(contact: &Option<Vec<String>>) -> Result<String, Problem> {
    let list = contact.as_deref().unwrap_or_default();
    if list.len() > 4 {
        return Err(Problem::malformed("give at most 4 contacts"));
    }
    for c in list {
        let ok = c.strip_prefix("mailto:").is_some_and(|m| {
            m.contains('@') && m.len() < 200 && !m.contains(',') && !m.contains(char::is_whitespace)
        });
        if !ok {
            return Err(Problem::new(
                ProblemKind::Malformed,
                format!("the contact {} is not a mailto: address", shown(c)),
            ));
        }
    }
    Ok(list.join(","))
}

/// newAccount (RFC 8555 §7.3): the key's existing account, or a new one bound by a token
/// (EAB), or at security level medium by nothing.
pub fn new_account(ctx: &Ctx, req: &Incoming) -> Result<Answer, Problem> {
    let result = new_account_in(ctx, req);
    if let Err(p) = &result {
        if matches!(
            p.kind,
            ProblemKind::Unauthorized | ProblemKind::ExternalAccountRequired
        ) {
            refused(ctx, req, "acme-account", "new-account", p);
        }
    }
    result
}

fn new_account_in(ctx: &Ctx, req: &Incoming) -> Result<Answer, Problem> {
    let verified = verify(ctx, req, true)?;
    let mut conn = db::get(&ctx.pool)?;
    let Signed::Key(jwk) = verified.signed else {
        unreachable!("newAccount refuses a kid in verify")
    };
    let payload: NewAccountPayload = Verified::payload(&verified.payload)?;
    let urls = Urls::new(ctx);
    let thumbprint = jwk.thumbprint();
    if let Some(existing) = AcmeAccount::find_by_thumbprint(&mut conn, &thumbprint)? {
        if existing.status != AcmeAccountStatus::Valid {
            return Err(Problem::unauthorized(format!(
                "the account of this key is {}: use a new key",
                existing.status.key()
            )));
        }
        return Ok(
            Answer::json(200, account_json(ctx, &existing)).at(urls.account(&existing.account_id))
        );
    }
    if payload.only_return_existing {
        return Err(Problem::new(
            ProblemKind::AccountDoesNotExist,
            "no account has this key (onlyReturnExisting)",
        ));
    }
    let contact = contact_text(&payload.contact)?;
    let settings = Settings::load(&mut conn)?;
    let account_id = random_id();
    let bound = match &payload.external_account_binding {
        None if settings.security_level == SecurityLevel::Medium => None,
        None => {
            return Err(Problem::new(
                ProblemKind::ExternalAccountRequired,
                format!(
                    "the security level is {}: an account needs an External Account Binding; ask an administrator for a token and use its name as the key ID and its HMAC key (token page, after Show)",
                    settings.security_level.key()
                ),
            ))
        }
        Some(eab) => {
            let kid = jws::verify_eab(eab, &jwk, &req.url, |name| {
                let token = Token::find_by_name(&mut conn, name).ok()??;
                let value = ctx.token_key.decrypt(&token.name, &token.value_encrypted).ok()?;
                crate::acme::eab_mac_key(&value)
            })?;
            Some(kid)
        }
    };
    let jwk_text = jwk.to_json().to_string();
    let account = db::write_tx(&mut conn, |c| {
        let key = AccountKey {
            account_id: &account_id,
            thumbprint: &thumbprint,
            jwk: &jwk_text,
            contact: &contact,
        };
        bind_account(c, &key, bound.as_deref())
    })
    .map_err(|e| match e {
        // Two registrations of one key racing: the other one won; its account stands.
        AppError::Conflict(_) => Problem::malformed("this key was registered at the same moment by another request: send newAccount again to get its account"),
        e => Problem::from(e),
    })?;
    Ok(Answer::json(201, account_json(ctx, &account)).at(urls.account(&account.account_id)))
}

/// A new account's own values.
struct AccountKey<'a> {
    account_id: &'a str,
    thumbprint: &'a str,
    jwk: &'a str,
    contact: &'a str,
}

/// Inserts the account in the caller's transaction, using its token once (the conditional
/// update decides, as for an enrollment: max uses and validity hold under any concurrency).
fn bind_account(
    c: &mut WriteTx,
    key: &AccountKey,
    token_name: Option<&str>,
) -> Result<AcmeAccount, AppError> {
    let account_id = key.account_id;
    let user = format!("ACME account {account_id}");
    let (binding, host_id, via) = match token_name {
        None => (
            AcmeBinding::Unbound,
            None,
            "no token (security level medium: names are proved by challenges)".to_string(),
        ),
        Some(name) => {
            let token = Token::find_by_name(c, name)?.ok_or_else(|| {
                AppError::Unprocessable(format!("the token {name} no longer exists"))
            })?;
            let token = super::tokens::consume_known(c, &token, &user)?;
            audit::record(
                c,
                &Event::new(AuditCategory::Token, "use", &user, &token.name).describe(format!(
                    "token used to bind {user} ({} of {})",
                    token.uses, token.max_uses
                )),
            )?;
            match token.kind {
                TokenKind::Authorization => (
                    AcmeBinding::Authorization,
                    None,
                    format!("authorization token {name}"),
                ),
                TokenKind::Reissue => {
                    let host = token
                        .host_id
                        .as_deref()
                        .map(|h| Host::find_by_host_id(c, h))
                        .transpose()?
                        .flatten()
                        .ok_or_else(|| {
                            AppError::Unprocessable(format!(
                                "the host of reissue token {name} no longer exists"
                            ))
                        })?;
                    (
                        AcmeBinding::Reissue,
                        Some(host.host_id),
                        format!("reissue token {name} (host {})", host.primary_name),
                    )
                }
            }
        }
    };
    AcmeAccount::insert(
        c,
        &NewAcmeAccount {
            account_id,
            thumbprint: key.thumbprint,
            jwk: key.jwk,
            status: AcmeAccountStatus::Valid,
            binding,
            token_name,
            host_id: host_id.as_deref(),
            contact: key.contact,
            created_at: db::now(),
        },
    )?;
    let account =
        AcmeAccount::find(c, account_id)?.ok_or_else(|| AppError::vanished("ACME account"))?;
    audit::record(
        c,
        &Event::new(AuditCategory::Cert, "acme-account", &user, account_id).describe(format!(
            "ACME account {account_id} registered (key {}) via {via}",
            account.thumbprint
        )),
    )?;
    Ok(account)
}

#[derive(Deserialize, Default)]
struct AccountUpdate {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    contact: Option<Vec<String>>,
}

/// The account resource: POST-as-GET reads it; `{"status": "deactivated"}` ends it;
/// `contact` replaces the contacts.
pub fn account(ctx: &Ctx, req: &Incoming, id: &str) -> Result<Answer, Problem> {
    let (account, payload) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    if account.account_id != id {
        return Err(Problem::unauthorized(
            "an account may read and change only itself",
        ));
    }
    let urls = Urls::new(ctx);
    if payload.is_empty() {
        return Ok(Answer::json(200, account_json(ctx, &account)).at(urls.account(id)));
    }
    let update: AccountUpdate = Verified::payload(&payload)?;
    let account = db::write_tx(&mut conn, |c| {
        if let Some(contact) = &update.contact {
            let text = contact_text(&Some(contact.clone())).map_err(problem_to_app)?;
            AcmeAccount::set_contact(c, id, &text)?;
        }
        match update.status.as_deref() {
            None | Some("valid") => {}
            Some("deactivated") => {
                AcmeAccount::set_status(c, id, AcmeAccountStatus::Deactivated)?;
                audit::record(
                    c,
                    &Event::new(
                        AuditCategory::Cert,
                        "acme-deactivate",
                        &format!("ACME account {id}"),
                        id,
                    )
                    .describe(format!("ACME account {id} deactivated by its own key")),
                )?;
            }
            Some(other) => {
                return Err(AppError::BadRequest(format!(
                    "an account's status can only be set to deactivated, not {}",
                    shown(other)
                )))
            }
        }
        AcmeAccount::find(c, id)?.ok_or_else(|| AppError::vanished("ACME account"))
    })?;
    Ok(Answer::json(200, account_json(ctx, &account)).at(urls.account(id)))
}

/// A problem raised inside a transaction travels as an `AppError` and comes back as itself.
fn problem_to_app(p: Problem) -> AppError {
    AppError::BadRequest(p.detail)
}

/// The account's orders (RFC 8555 §7.1.2.1), newest first, at most 100.
pub fn account_orders(ctx: &Ctx, req: &Incoming, id: &str) -> Result<Answer, Problem> {
    let (account, _) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    if account.account_id != id {
        return Err(Problem::unauthorized(
            "an account may list only its own orders",
        ));
    }
    let urls = Urls::new(ctx);
    let orders: Vec<String> = AcmeOrder::ids_of_account(&mut conn, id, 100)?
        .iter()
        .map(|o| urls.order(o))
        .collect();
    Ok(Answer::json(200, json!({ "orders": orders })))
}

#[derive(Deserialize)]
struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct NewOrderPayload {
    identifiers: Vec<Identifier>,
    #[serde(default)]
    replaces: Option<String>,
    #[serde(default, rename = "notBefore")]
    not_before: Option<String>,
    #[serde(default, rename = "notAfter")]
    not_after: Option<String>,
}

/// The names of an order, checked and normalised; a name that cannot be one is a
/// `rejectedIdentifier` (an IP address: `unsupportedIdentifier`).
fn order_names(payload: &NewOrderPayload) -> Result<Vec<String>, Problem> {
    if payload.identifiers.is_empty() {
        return Err(Problem::malformed("an order needs at least one identifier"));
    }
    if payload.identifiers.len() > MAX_IDENTIFIERS {
        return Err(Problem::new(
            ProblemKind::RejectedIdentifier,
            format!("an order may ask for at most {MAX_IDENTIFIERS} names"),
        ));
    }
    if payload.not_before.is_some() || payload.not_after.is_some() {
        return Err(Problem::malformed(
            "notBefore and notAfter are not supported: the validity is the server's setting",
        ));
    }
    let mut names = Vec::new();
    for id in &payload.identifiers {
        if id.kind != "dns" {
            return Err(Problem::new(
                ProblemKind::UnsupportedIdentifier,
                format!(
                    "identifiers of type {} are not supported: only dns",
                    shown(&id.kind)
                ),
            ));
        }
        if id.value.starts_with("*.") {
            return Err(Problem::new(
                ProblemKind::RejectedIdentifier,
                format!(
                    "{}: wildcard names are not issued to hosts",
                    shown(&id.value)
                ),
            ));
        }
        let name = hosts::normalize_hostname(&id.value).map_err(|why| {
            Problem::new(
                ProblemKind::RejectedIdentifier,
                format!("{}: {why}", shown(&id.value)),
            )
        })?;
        if crate::names::kind(&name) == crate::names::Kind::Ip {
            return Err(Problem::new(
                ProblemKind::UnsupportedIdentifier,
                format!(
                    "{name}: IP addresses are ordered as type ip, which this server does not issue"
                ),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// What a name of an order needs before a certificate may carry it.
enum NameStatus {
    /// The host's own approved name: the token (or the account's host) is the proof.
    Allowed,
    /// An http-01 challenge.
    Challenge,
}

/// newOrder: the account's host is registered by its first order (authorization token);
/// each name is the host's approved name (valid at once), or goes through the name policy
/// and mappings (approved: valid; pending: the order is refused, the mapping kept for an
/// administrator), or (an account without a token) needs an http-01 challenge.
pub fn new_order(ctx: &Ctx, req: &Incoming) -> Result<Answer, Problem> {
    let (account, payload) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    let payload: NewOrderPayload = Verified::payload(&payload)?;
    let names = order_names(&payload)?;
    let replaces = match &payload.replaces {
        Some(cert_id) => Some(replaced_serial(ctx, &mut conn, &account, cert_id)?),
        None => None,
    };
    let order_id = random_id();
    // Through the group writer (concurrent orders commit together), which needs a pooled
    // connection: this request gives its own back meanwhile.
    drop(conn);
    let (job_ctx, job_account, job_names, job_id) = (
        ctx.clone(),
        account.clone(),
        names.clone(),
        order_id.clone(),
    );
    let outcome = ctx.writer.write(move |c| {
        open_order(
            &job_ctx,
            c,
            &job_account,
            &job_names,
            &job_id,
            replaces.as_deref(),
        )
    })?;
    let mut conn = db::get(&ctx.pool)?;
    match outcome {
        Ok(order) => {
            let answer = order_answer(ctx, &mut conn, &order)?;
            Ok(Answer {
                status: 201,
                ..answer
            })
        }
        Err(p) => {
            refused(ctx, req, "acme-order", &names[0], &p);
            Err(p)
        }
    }
}

/// The serial of the certificate an order `replaces` (RFC 9773 §5): one of the account's
/// host's certificates.
fn replaced_serial(
    ctx: &Ctx,
    conn: &mut DbConn,
    account: &AcmeAccount,
    cert_id: &str,
) -> Result<String, Problem> {
    let cert = certificate_of_cert_id(ctx, conn, cert_id)?;
    if account.host_id.as_deref() != Some(cert.host_id.as_str()) {
        return Err(Problem::unauthorized(format!(
            "the certificate {} that this order replaces is not of this account's host",
            cert.serial
        )));
    }
    Ok(cert.serial)
}

/// Inside the order's transaction. `Ok(Err(problem))`: refused, with what it discovered
/// (a pending mapping) kept.
fn open_order(
    ctx: &Ctx,
    c: &mut WriteTx,
    account: &AcmeAccount,
    names: &[String],
    order_id: &str,
    replaces: Option<&str>,
) -> Result<Result<AcmeOrder, Problem>, AppError> {
    let now = db::now();
    let settings = c.settings()?;
    let policy = mappings::policy(ctx, &settings);
    let actor = format!("ACME account {}", account.account_id);
    for name in names {
        if let Some(why) = policy.refuse_requested(name, true) {
            return Ok(Err(Problem::new(ProblemKind::RejectedIdentifier, why)));
        }
    }
    let host = match (&account.host_id, account.binding) {
        (Some(h), _) => Some(Host::find_by_host_id(c, h)?.ok_or_else(|| {
            AppError::Unprocessable(format!(
                "the host of this account ({h}) no longer exists: ask an administrator for a new token"
            ))
        })?),
        (None, AcmeBinding::Authorization) => match register_host(ctx, c, account, &names[0], &policy, now)? {
            Ok(h) => Some(h),
            Err(p) => return Ok(Err(p)),
        },
        (None, _) => None,
    };
    let mut statuses = Vec::new();
    let mut refusals = Vec::new();
    for name in names {
        let status = match &host {
            None => NameStatus::Challenge,
            Some(host) => match name_status(c, host, name, &policy, &settings, &actor, now)? {
                Ok(s) => s,
                Err(p) => {
                    refusals.push((name.clone(), p));
                    continue;
                }
            },
        };
        statuses.push((name.clone(), status));
    }
    if !refusals.is_empty() {
        let detail = refusals
            .iter()
            .map(|(_, p)| p.detail.clone())
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(ProblemKind::RejectedIdentifier, detail);
        p.subproblems = refusals;
        return Ok(Err(p));
    }
    let expires = now + Duration::hours(ORDER_HOURS);
    let all_valid = statuses
        .iter()
        .all(|(_, s)| matches!(s, NameStatus::Allowed));
    AcmeOrder::insert(
        c,
        &NewAcmeOrder {
            order_id,
            account_id: &account.account_id,
            identifiers: &names.join(","),
            status: if all_valid {
                AcmeOrderStatus::Ready
            } else {
                AcmeOrderStatus::Pending
            },
            replaces,
            created_at: now,
            expires_at: expires,
        },
    )?;
    for (name, status) in &statuses {
        let token = matches!(status, NameStatus::Challenge).then(random_id);
        AcmeAuthorization::insert(
            c,
            &NewAcmeAuthorization {
                authz_id: &random_id(),
                order_id,
                account_id: &account.account_id,
                identifier: name,
                status: if token.is_some() {
                    AcmeAuthzStatus::Pending
                } else {
                    AcmeAuthzStatus::Valid
                },
                challenge_token: token.as_deref(),
                challenge_status: token.as_ref().map(|_| AcmeAuthzStatus::Pending),
                validated_at: None,
                created_at: now,
                expires_at: expires,
            },
        )?;
    }
    AcmeAccount::touch_order(c, &account.account_id, now)?;
    Ok(Ok(
        AcmeOrder::find(c, order_id)?.ok_or_else(|| AppError::vanished("ACME order"))?
    ))
}

/// The first order of an account bound by an authorization token registers the host: its
/// first name is the primary name of a new host ID, or of a known host that never had a
/// certificate (a host with one needs a reissue token, as for enrollment).
fn register_host(
    _ctx: &Ctx,
    c: &mut WriteTx,
    account: &AcmeAccount,
    name: &str,
    policy: &crate::names::NamePolicy,
    now: NaiveDateTime,
) -> Result<Result<Host, Problem>, AppError> {
    let actor = format!("ACME account {}", account.account_id);
    let host = match hosts::find_by_name(c, name)? {
        Some(h) if Certificate::host_has_any(c, &h.host_id)? => {
            return Ok(Err(Problem::new(
                ProblemKind::RejectedIdentifier,
                format!(
                    "{name} (host ID {}) has already been issued a certificate, so an authorization token cannot give it another: ask an administrator for a reissue token",
                    h.host_id
                ),
            )))
        }
        Some(h) => h,
        None => {
            if let Some(why) = policy.refuse_requested(name, false) {
                return Ok(Err(Problem::new(ProblemKind::RejectedIdentifier, why)));
            }
            let h = hosts::create_row(c, &hosts::new_host_id(), name, &actor, now)?;
            audit::record(
                c,
                &Event::new(AuditCategory::Host, "create", &actor, name).describe(format!(
                    "host {name} (host ID {}) registered by the first order of ACME account {} (token {})",
                    h.host_id,
                    account.account_id,
                    account.token_name.as_deref().unwrap_or("-")
                )),
            )?;
            h
        }
    };
    if !AcmeAccount::bind_host(c, &account.account_id, &host.host_id)? {
        return Err(AppError::Conflict(
            "this account's first order was placed at the same moment by another request: order again".into(),
        ));
    }
    Ok(Ok(host))
}

/// Whether the host may have `name` in a certificate now: its approved name, a name of
/// another host (refused), or a new name decided by the mapping rules.
#[allow(clippy::too_many_arguments)]
fn name_status(
    c: &mut WriteTx,
    host: &Host,
    name: &str,
    policy: &crate::names::NamePolicy,
    settings: &Settings,
    actor: &str,
    now: NaiveDateTime,
) -> Result<Result<NameStatus, Problem>, AppError> {
    match hosts::find_by_name(c, name) {
        Ok(Some(owner)) if owner.host_id == host.host_id => return Ok(Ok(NameStatus::Allowed)),
        Ok(Some(owner)) => {
            return Ok(Err(Problem::new(
                ProblemKind::RejectedIdentifier,
                format!(
                "{name} is a name of another host ({}): this account's host ({}) may not have it",
                owner.host_id, host.primary_name
            ),
            )))
        }
        Err(AppError::Conflict(m)) => {
            return Ok(Err(Problem::new(ProblemKind::RejectedIdentifier, m)))
        }
        Err(e) => return Err(e),
        Ok(None) => {}
    }
    let state = mappings::discover_with(
        c,
        host,
        name,
        policy,
        settings.auto_map_host_names,
        actor,
        now,
    )?;
    Ok(match state {
        Some(MappingState::Approved) => Ok(NameStatus::Allowed),
        Some(s) => Err(Problem::new(
            ProblemKind::RejectedIdentifier,
            format!(
                "{name} is now a mapping of host {} ({}) waiting for approval ({}); once an administrator approves it, order again",
                host.primary_name,
                host.host_id,
                s.key()
            ),
        )),
        None => Err(Problem::new(
            ProblemKind::RejectedIdentifier,
            format!("{name} is reserved or not a host name"),
        )),
    })
}

fn order_json(ctx: &Ctx, order: &AcmeOrder, authz: &[AcmeAuthorization]) -> Value {
    let urls = Urls::new(ctx);
    let mut doc = json!({
        "status": order.status.key(),
        "expires": rfc3339(order.expires_at),
        "identifiers": order.names().iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>(),
        "authorizations": authz.iter().map(|a| urls.authz(&a.authz_id)).collect::<Vec<_>>(),
        "finalize": urls.finalize(&order.order_id),
    });
    if let Some(serial) = &order.certificate_serial {
        doc["certificate"] = json!(urls.certificate(serial));
    }
    if let Some(r) = &order.replaces {
        doc["replaces"] = json!(r);
    }
    if let Some(e) = &order.error {
        doc["error"] = Problem::unauthorized(e.clone()).to_json();
    }
    doc
}

fn order_answer(ctx: &Ctx, conn: &mut DbConn, order: &AcmeOrder) -> Result<Answer, Problem> {
    let authz = AcmeAuthorization::for_order(conn, &order.order_id)?;
    Ok(Answer::json(200, order_json(ctx, order, &authz)).at(Urls::new(ctx).order(&order.order_id)))
}

/// An order of the signing account (others' orders are not found).
fn own_order(conn: &mut DbConn, account: &AcmeAccount, id: &str) -> Result<AcmeOrder, Problem> {
    AcmeOrder::find(conn, id)?
        .filter(|o| o.account_id == account.account_id)
        .ok_or_else(|| Problem::not_found("order"))
}

/// POST-as-GET of an order. A pending order whose authorizations are all valid now is ready.
pub fn order(ctx: &Ctx, req: &Incoming, id: &str) -> Result<Answer, Problem> {
    let (account, _) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    let order = own_order(&mut conn, &account, id)?;
    order_answer(ctx, &mut conn, &order)
}

/// One challenge of an authorization as JSON: the type the client answered carries the
/// outcome; the other stays pending (and is never checked once one has been answered).
fn challenge_json(urls: &Urls, a: &AcmeAuthorization, token: &str, kind: ChallengeType) -> Value {
    let answered = a.challenge_type == Some(kind);
    let status = if answered {
        a.challenge_status.unwrap_or(AcmeAuthzStatus::Pending)
    } else {
        AcmeAuthzStatus::Pending
    };
    let mut ch = json!({
        "type": kind.key(),
        "url": urls.challenge(&a.authz_id, kind),
        "token": token,
        "status": status.key(),
    });
    if answered {
        if let Some(at) = a.validated_at {
            ch["validated"] = json!(rfc3339(at));
        }
        if let Some(e) = &a.error {
            ch["error"] = Problem::new(ProblemKind::Incorrect, e.clone()).to_json();
        }
    }
    ch
}

fn authz_json(ctx: &Ctx, a: &AcmeAuthorization) -> Value {
    let urls = Urls::new(ctx);
    let challenges: Vec<Value> = match &a.challenge_token {
        None => Vec::new(),
        Some(token) => ChallengeType::ALL
            .iter()
            .map(|kind| challenge_json(&urls, a, token, *kind))
            .collect(),
    };
    json!({
        "status": a.status.key(),
        "expires": rfc3339(a.expires_at),
        "identifier": {"type": "dns", "value": a.identifier},
        "challenges": challenges,
    })
}

fn own_authz(
    conn: &mut DbConn,
    account: &AcmeAccount,
    id: &str,
) -> Result<AcmeAuthorization, Problem> {
    AcmeAuthorization::find(conn, id)?
        .filter(|a| a.account_id == account.account_id)
        .ok_or_else(|| Problem::not_found("authorization"))
}

/// POST-as-GET of an authorization; `{"status": "deactivated"}` gives it up.
pub fn authz(ctx: &Ctx, req: &Incoming, id: &str) -> Result<Answer, Problem> {
    let (account, payload) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    let mut a = own_authz(&mut conn, &account, id)?;
    if !payload.is_empty() {
        let update: AccountUpdate = Verified::payload(&payload)?;
        if update.status.as_deref() == Some("deactivated") {
            AcmeAuthorization::set_status(&mut conn, id, AcmeAuthzStatus::Deactivated)?;
            a.status = AcmeAuthzStatus::Deactivated;
        }
    }
    Ok(Answer::json(200, authz_json(ctx, &a))
        .at(Urls::new(ctx).authz(id))
        .link(Urls::new(ctx).order(&a.order_id), "up"))
}

/// A challenge: the client says it is ready; the server checks it (`acme::validate`:
/// http-01 or tls-alpn-01) and answers once the check is done (valid or invalid). Only
/// the first answered challenge of an authorization is checked.
pub fn challenge(ctx: &Ctx, req: &Incoming, id: &str, kind: &str) -> Result<Answer, Problem> {
    let kind = ChallengeType::parse(kind).ok_or_else(|| Problem::not_found("challenge"))?;
    let verified = verify(ctx, req, false)?;
    let mut conn = db::get(&ctx.pool)?;
    let Signed::Account(account, jwk) = verified.signed else {
        return Err(Problem::malformed(
            "a challenge is answered by its account (kid)",
        ));
    };
    let a = own_authz(&mut conn, &account, id)?;
    let Some(token) = a.challenge_token.clone() else {
        return Err(Problem::malformed(
            "this authorization needs no challenge: it is valid",
        ));
    };
    let urls = Urls::new(ctx);
    let untried = a.challenge_type.is_none();
    if untried && a.status == AcmeAuthzStatus::Pending && db::now() < a.expires_at {
        let expected = format!("{token}.{}", jwk.thumbprint());
        // The check may wait seconds on the name's server: without holding a connection.
        drop(conn);
        let outcome = crate::acme::validate::check(kind, &a.identifier, &token, &expected);
        conn = db::get(&ctx.pool)?;
        let (status, error) = match &outcome {
            Ok(()) => (AcmeAuthzStatus::Valid, None),
            Err(why) => (AcmeAuthzStatus::Invalid, Some(why.as_str())),
        };
        db::write_tx(&mut conn, |c| {
            AcmeAuthorization::set_outcome(c, id, kind, status, error, db::now())?;
            let event = Event::new(
                AuditCategory::Cert,
                "acme-challenge",
                &format!("ACME account {}", account.account_id),
                &a.identifier,
            );
            let event = match error {
                None => event.describe(format!(
                    "{} challenge for {} passed",
                    kind.key(),
                    a.identifier
                )),
                Some(why) => event
                    .describe(format!(
                        "{} challenge for {} failed: {why}",
                        kind.key(),
                        a.identifier
                    ))
                    .failed(),
            };
            audit::record(c, &event)?;
            settle_order(c, &a.order_id)?;
            Ok(())
        })?;
    }
    let a = own_authz(&mut conn, &account, id)?;
    Ok(Answer::json(200, challenge_json(&urls, &a, &token, kind)).link(urls.authz(id), "up"))
}

/// A pending order becomes ready when every authorization is valid, invalid when one is.
fn settle_order(c: &mut DbConn, order_id: &str) -> Result<(), AppError> {
    let all = AcmeAuthorization::for_order(c, order_id)?;
    if all.iter().all(|a| a.status == AcmeAuthzStatus::Valid) {
        AcmeOrder::advance(
            c,
            order_id,
            AcmeOrderStatus::Pending,
            AcmeOrderStatus::Ready,
        )?;
    } else if let Some(bad) = all.iter().find(|a| a.status == AcmeAuthzStatus::Invalid) {
        if AcmeOrder::advance(
            c,
            order_id,
            AcmeOrderStatus::Pending,
            AcmeOrderStatus::Invalid,
        )? {
            AcmeOrder::set_invalid(
                c,
                order_id,
                &format!(
                    "the challenge for {} failed: {}",
                    bad.identifier,
                    bad.error.as_deref().unwrap_or("invalid")
                ),
            )?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct FinalizePayload {
    csr: String,
}

/// finalize: the CSR (base64url DER) must ask for exactly the order's names, under the
/// same key rules as the JSON API; the certificate is issued by the enrollment steps.
pub fn finalize(ctx: &Ctx, req: &Incoming, id: &str) -> Result<Answer, Problem> {
    let (account, payload) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    let order = own_order(&mut conn, &account, id)?;
    if order.status != AcmeOrderStatus::Ready {
        return Err(Problem::new(
            ProblemKind::OrderNotReady,
            format!(
                "the order is {}, not ready: {}",
                order.status.key(),
                match order.status {
                    AcmeOrderStatus::Pending => "complete its challenges first",
                    AcmeOrderStatus::Valid => "its certificate is already issued",
                    _ => "place a new order",
                }
            ),
        ));
    }
    if db::now() >= order.expires_at {
        return Err(Problem::new(
            ProblemKind::OrderNotReady,
            "the order expired: place a new order",
        ));
    }
    let payload: FinalizePayload = Verified::payload(&payload)?;
    let der = URL_SAFE_NO_PAD
        .decode(payload.csr.trim_end_matches('='))
        .map_err(|_| Problem::new(ProblemKind::BadCsr, "csr is not base64url DER"))?;
    let csr = crate::pki::csr::verify_der(&der)
        .map_err(|e| Problem::new(ProblemKind::BadCsr, AppError::from(e).public_message()))?;
    let names: Vec<String> = order.names().iter().map(|s| s.to_string()).collect();
    let mut asked: Vec<String> = csr
        .dns_names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    asked.sort();
    asked.dedup();
    let mut wanted = names.clone();
    wanted.sort();
    if asked != wanted {
        return Err(Problem::new(
            ProblemKind::BadCsr,
            format!(
                "the CSR asks for {} but the order is for {}: the CSR's names must be the order's",
                if asked.is_empty() {
                    "no DNS names".to_string()
                } else {
                    asked.join(", ")
                },
                wanted.join(", ")
            ),
        ));
    }
    let issue = super::enroll::AccountIssue {
        account: account.clone(),
        order_id: order.order_id.clone(),
        names: names.clone(),
        csr,
        replaces: order.replaces.clone(),
    };
    // The writer needs a pooled connection: this request gives its own back meanwhile.
    drop(conn);
    let issued = super::enroll::issue_for_account(ctx, issue);
    let mut conn = db::get(&ctx.pool)?;
    if let Err(e) = issued {
        let p = Problem::from(e);
        refused(ctx, req, "acme-finalize", &names[0], &p);
        if p.kind != ProblemKind::Busy && p.kind != ProblemKind::ServerInternal {
            AcmeOrder::set_invalid(&mut conn, id, &p.detail)?;
        }
        return Err(p);
    }
    let order = own_order(&mut conn, &account, id)?;
    order_answer(ctx, &mut conn, &order)
}

/// The certificate with the CA's: `application/pem-certificate-chain`.
pub fn certificate(ctx: &Ctx, req: &Incoming, serial: &str) -> Result<Answer, Problem> {
    let (account, _) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    let cert = Certificate::find_by_serial(&mut conn, &serial.to_ascii_uppercase())?
        .filter(|c| account.host_id.as_deref() == Some(c.host_id.as_str()))
        .ok_or_else(|| Problem::not_found("certificate of this account's host"))?;
    let issuers = ctx.pki.issuers();
    let chain = format!(
        "{}{}",
        ensure_newline(&cert.pem),
        cert.issuer_id
            .map(|id| issuers.chain_pem(id))
            .unwrap_or_default()
    );
    Ok(Answer {
        status: 200,
        body: Body::Pem(chain),
        location: None,
        links: vec![(Urls::new(ctx).directory(), "index")],
        retry_after: None,
    })
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

#[derive(Deserialize)]
struct RevokePayload {
    certificate: String,
    #[serde(default)]
    reason: Option<u8>,
}

/// The revocation reasons an ACME client may give, by their RFC 5280 codes: those the
/// console offers.
fn reason_of_code(code: u8) -> Option<Reason> {
    Reason::ALL
        .iter()
        .copied()
        .find(|r| crate::pki::crl::reason_code(*r).unwrap_or(0) == code)
}

/// revokeCert (RFC 8555 §7.6): by the account of the certificate's host, or signed by the
/// certificate's own key; any reason the console offers.
pub fn revoke(ctx: &Ctx, req: &Incoming) -> Result<Answer, Problem> {
    let result = revoke_in(ctx, req);
    if let Err(p) = &result {
        if p.kind == ProblemKind::Unauthorized {
            refused(ctx, req, "acme-revoke", "revoke-cert", p);
        }
    }
    result
}

fn revoke_in(ctx: &Ctx, req: &Incoming) -> Result<Answer, Problem> {
    let verified = verify(ctx, req, true)?;
    let mut conn = db::get(&ctx.pool)?;
    let payload: RevokePayload = Verified::payload(&verified.payload)?;
    let der = URL_SAFE_NO_PAD
        .decode(payload.certificate.trim_end_matches('='))
        .map_err(|_| Problem::malformed("certificate is not base64url DER"))?;
    let (serial, spki) = crate::pki::serial_and_spki(&der)
        .ok_or_else(|| Problem::malformed("certificate is not a DER X.509 certificate"))?;
    let cert = Certificate::find_by_serial(&mut conn, &serial)?
        .filter(|c| pem_der(&c.pem).as_deref() == Some(der.as_slice()))
        .ok_or_else(|| Problem::not_found("certificate issued by this CA"))?;
    let actor = match &verified.signed {
        Signed::Account(a, _) => {
            if a.host_id.as_deref() != Some(cert.host_id.as_str()) {
                return Err(Problem::unauthorized(format!(
                    "certificate {serial} is not of this account's host: revoke it with its own key or in the console"
                )));
            }
            format!("ACME account {}", a.account_id)
        }
        Signed::Key(jwk) => {
            if Jwk::from_spki_der(&spki).as_ref() != Some(jwk) {
                return Err(Problem::unauthorized(
                    "the jwk is not the certificate's key: sign with the certificate's key or the account's",
                ));
            }
            format!("the key of certificate {serial}")
        }
    };
    let reason = match payload.reason {
        None => Reason::Unspecified,
        Some(code) => reason_of_code(code).ok_or_else(|| {
            Problem::new(
                ProblemKind::BadRevocationReason,
                format!(
                    "reason {code} is not one this server records: use 0 (unspecified), 1 (keyCompromise), 2 (cACompromise), 3 (affiliationChanged), 4 (superseded) or 5 (cessationOfOperation)"
                ),
            )
        })?,
    };
    let revoked = db::write_tx(&mut conn, |c| {
        if !Certificate::revoke(c, &serial, reason, &actor, db::now())? {
            return Ok(false);
        }
        audit::record(
            c,
            &Event::new(AuditCategory::Cert, "revoke", &actor, &serial)
                .describe(format!(
                    "certificate {serial} of {} (host ID {}) revoked over ACME",
                    cert.primary_name(),
                    cert.host_id
                ))
                .reason(reason.label()),
        )?;
        Ok(true)
    })?;
    drop(conn);
    if !revoked {
        return Err(Problem::new(
            ProblemKind::AlreadyRevoked,
            format!("certificate {serial} is already revoked"),
        ));
    }
    // After the connection is given back: the re-signing takes one of its own.
    super::pki::rebuild_crl_after_revocation(ctx);
    Ok(Answer {
        status: 200,
        body: Body::Empty,
        location: None,
        links: Vec::new(),
        retry_after: None,
    })
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(p.contents)
}

/// keyChange (RFC 8555 §7.3.5): the inner JWS, signed by the new key, names the account
/// and its old key; the new key must not belong to another account.
pub fn key_change(ctx: &Ctx, req: &Incoming) -> Result<Answer, Problem> {
    let (account, payload) = verify(ctx, req, false)?.account()?;
    let mut conn = db::get(&ctx.pool)?;
    let inner = jws::parse_inner(&payload)?;
    if inner.url != req.url {
        return Err(Problem::malformed(
            "the inner JWS's url must be the keyChange URL as well",
        ));
    }
    let Signer::Jwk(new_key) = &inner.signer else {
        return Err(Problem::malformed(
            "the inner JWS must carry the new key as jwk",
        ));
    };
    inner.verify(new_key)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct KeyChange {
        account: String,
        old_key: Value,
    }
    let body: KeyChange = Verified::payload(&inner.payload)?;
    let urls = Urls::new(ctx);
    if body.account != urls.account(&account.account_id) {
        return Err(Problem::unauthorized("the inner JWS names another account"));
    }
    if Jwk::from_json(&body.old_key)? != account_key(&account)? {
        return Err(Problem::unauthorized(
            "oldKey is not the account's current key",
        ));
    }
    let thumbprint = new_key.thumbprint();
    if let Some(other) = AcmeAccount::find_by_thumbprint(&mut conn, &thumbprint)? {
        let mut p = Problem::new(
            ProblemKind::KeyInUse,
            "the new key is already another account's: choose a new key",
        );
        p.location = Some(urls.account(&other.account_id));
        return Err(p);
    }
    let id = account.account_id.clone();
    let account = db::write_tx(&mut conn, |c| {
        AcmeAccount::set_key(c, &id, &new_key.to_json().to_string(), &thumbprint)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::Cert,
                "acme-key-change",
                &format!("ACME account {id}"),
                &id,
            )
            .describe(format!(
                "ACME account {id} changed its key from {} to {thumbprint}",
                account.thumbprint
            )),
        )?;
        AcmeAccount::find(c, &id)?.ok_or_else(|| AppError::vanished("ACME account"))
    })
    .map_err(|e| match e {
        AppError::Conflict(_) => Problem::new(
            ProblemKind::KeyInUse,
            "the new key was registered at the same moment by another request",
        ),
        e => e.into(),
    })?;
    Ok(Answer::json(200, account_json(ctx, &account)).at(urls.account(&id)))
}

/// The certificate an RFC 9773 certID names: base64url(AKI keyIdentifier) "."
/// base64url(serial number's DER content octets).
fn certificate_of_cert_id(
    ctx: &Ctx,
    conn: &mut DbConn,
    cert_id: &str,
) -> Result<Certificate, Problem> {
    let (aki, serial) = cert_id
        .split_once('.')
        .ok_or_else(|| Problem::malformed("a certID is base64url(AKI) \".\" base64url(serial)"))?;
    let aki = URL_SAFE_NO_PAD
        .decode(aki)
        .map_err(|_| Problem::malformed("the certID's key identifier is not base64url"))?;
    let serial = URL_SAFE_NO_PAD
        .decode(serial)
        .map_err(|_| Problem::malformed("the certID's serial is not base64url"))?;
    let Some(issuer_id) = ctx.pki.issuers().by_key_id(&aki).map(|l| l.row.id) else {
        return Err(Problem::not_found(
            "certificate of this CA (the certID names another issuer)",
        ));
    };
    let serial = hex::encode_upper(
        serial
            .iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<_>>(),
    );
    Certificate::find_by_serial(conn, &serial)?
        .filter(|c| c.issuer_id == Some(issuer_id))
        .ok_or_else(|| Problem::not_found("certificate"))
}

/// GET renewalInfo/{certID} (unauthenticated, RFC 9773 §4.2).
pub fn renewal_info(ctx: &Ctx, cert_id: &str) -> Result<Answer, Problem> {
    let mut conn = db::get(&ctx.pool)?;
    let cert = certificate_of_cert_id(ctx, &mut conn, cert_id)?;
    let host = Host::find_by_host_id(&mut conn, &cert.host_id)?;
    let (start, end) = super::renewal::renewal_window(&cert, host.as_ref(), db::now());
    Ok(Answer {
        retry_after: Some(RENEWAL_INFO_RETRY_SECONDS),
        ..Answer::json(
            200,
            json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}),
        )
    })
}

/// An administrator deactivates one of a host's ACME accounts: its key signs nothing more
/// (orders, revocations, key changes); the host's certificates stay as they are.
pub fn deactivate_by_admin(
    ctx: &Ctx,
    actor: &super::Actor,
    host_key: &str,
    account_id: &str,
) -> Result<AcmeAccount, AppError> {
    let mut conn = super::connect_as(
        ctx,
        actor,
        crate::models::user::Role::SecurityAdmin,
        AuditCategory::Cert,
        "acme-deactivate",
        account_id,
    )?;
    db::write_tx(&mut conn, |c| {
        let host = hosts::find(c, host_key)?;
        let account = AcmeAccount::find(c, account_id)?
            .filter(|a| a.host_id.as_deref() == Some(host.host_id.as_str()))
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "host {} has no ACME account {}",
                    host.primary_name,
                    account_id.chars().take(40).collect::<String>()
                ))
            })?;
        if account.status != AcmeAccountStatus::Valid {
            return Err(AppError::Conflict(format!(
                "the ACME account {account_id} is already {}",
                account.status.key()
            )));
        }
        AcmeAccount::set_status(c, account_id, AcmeAccountStatus::Deactivated)?;
        audit::record(
            c,
            &Event::new(
                AuditCategory::Cert,
                "acme-deactivate",
                &actor.username,
                account_id,
            )
            .describe(format!(
                "ACME account {account_id} of host {} ({}) deactivated (key {})",
                host.primary_name, host.host_id, account.thumbprint
            )),
        )?;
        Ok(AcmeAccount::find(c, account_id)?.unwrap_or(account))
    })
}
