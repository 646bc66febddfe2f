//! Sessions, the logged-in user, and CSRF protection for every form.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use super::view::{take_flash, Page};
use crate::error::AppError;
use crate::models::user::{Role, User};
use crate::services::{users, Actor, Ctx};

const USER_ID: &str = "uid";
const GENERATION: &str = "gen";
const CSRF: &str = "csrf";
const LOGIN_AT: &str = "login_at";
const AFTER_LOGIN: &str = "after_login";
/// A random id per login: logging out records it as ended on the server.
const SESSION_ID: &str = "sid";

/// The only pages a user who must change their password may reach.
const WHILE_MUST_CHANGE: [&str; 2] = ["/account/password", "/logout"];

/// A session lasts at most this long after login, however active it is.
pub const SESSION_MAX_HOURS: i64 = 12;

fn new_csrf_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> String {
    match session.get::<String>(CSRF) {
        Ok(Some(t)) => t,
        _ => {
            let t = new_csrf_token();
            let _ = session.insert(CSRF, &t);
            t
        }
    }
}

/// Starts a fresh session for `user`: a new cookie, a new CSRF token.
pub fn start_session(session: &Session, user: &User) -> Result<(), AppError> {
    session.renew();
    session.clear();
    let now = chrono::Utc::now().timestamp();
    let err = |e| AppError::internal_from("session", e);
    session.insert(USER_ID, user.id).map_err(err)?;
    session
        .insert(GENERATION, user.session_generation)
        .map_err(err)?;
    session.insert(LOGIN_AT, now).map_err(err)?;
    session.insert(SESSION_ID, new_csrf_token()).map_err(err)?;
    session.insert(CSRF, new_csrf_token()).map_err(err)?;
    Ok(())
}

/// Whether the session names a user (not yet checked against the database).
pub fn has_user(session: &Session) -> bool {
    matches!(session.get::<i64>(USER_ID), Ok(Some(_)))
}

/// The session being logged out: its user, its id, and when it would have expired.
pub fn current_session(session: &Session) -> Option<(i64, String, chrono::NaiveDateTime)> {
    let uid = session.get::<i64>(USER_ID).ok().flatten()?;
    let sid = session.get::<String>(SESSION_ID).ok().flatten()?;
    let login_at = session.get::<i64>(LOGIN_AT).ok().flatten().unwrap_or(0);
    let expires = chrono::DateTime::from_timestamp(login_at + SESSION_MAX_HOURS * 3600, 0)?;
    Some((uid, sid, expires.naive_utc()))
}

/// Reverse proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`).
pub struct TrustedProxies(pub Vec<std::net::IpAddr>);

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy. A header from
/// anyone else is ignored: it would let an attacker pick the address they are throttled by.
pub fn client_address(req: &HttpRequest) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return "unknown".into();
    };
    let trusted = req
        .app_data::<web::Data<TrustedProxies>>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // From the right: each hop appended the address it saw. An entry that is not an
    // address stops the walk, so nothing further left (client-written) is believed.
    for entry in forwarded.into_iter().rev() {
        match entry.parse::<std::net::IpAddr>() {
            Ok(a) if trusted.contains(&a) => continue,
            Ok(a) => return a.to_string(),
            Err(_) => break,
        }
    }
    peer.to_string()
}

/// A logged-in user, checked against the database on each request: a disabled user or
/// an ended session generation is logged out at once.
pub struct Auth {
    pub user: User,
    pub session: Session,
    pub csrf: String,
}

impl Auth {
    pub fn actor(&self) -> Actor {
        Actor {
            username: self.user.username.clone(),
            role: self.user.role(),
        }
    }

    pub fn role(&self) -> Role {
        self.user.role()
    }

    /// The layout data for a page in section `nav`; takes the pending flash messages.
    pub fn page(&self, title: &str, nav: &'static str) -> Page {
        Page {
            title: title.to_string(),
            nav,
            username: self.user.username.clone(),
            role: self.user.role.to_string(),
            can_change: self.role().can_change(),
            csrf: self.csrf.clone(),
            flash: take_flash(&self.session),
        }
    }
}

impl FromRequest for Auth {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Auth, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let ctx = req.app_data::<web::Data<Ctx>>().cloned();
        // Where to come back to after logging in: a bookmarked page stays bookmarked.
        let wanted = (req.method() == actix_web::http::Method::GET)
            .then(|| req.uri().path_and_query().map(|p| p.to_string()))
            .flatten();
        let may_pass = WHILE_MUST_CHANGE.contains(&req.path());
        Box::pin(async move {
            let result = authenticate(session.clone(), ctx).await;
            if let (Err(AppError::Unauthenticated), Some(path)) = (&result, wanted) {
                let _ = session.insert(AFTER_LOGIN, path);
            }
            let auth = result?;
            // A password set by someone else (or at the first start) is known to them:
            // until the user chooses their own, the console is closed to them.
            if auth.user.must_change_password && !may_pass {
                let to_password = HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/account/password"))
                    .finish();
                return Err(InternalError::from_response(
                    "the password must be changed first",
                    to_password,
                )
                .into());
            }
            Ok(auth)
        })
    }
}

async fn authenticate(session: Session, ctx: Option<web::Data<Ctx>>) -> Result<Auth, AppError> {
    let ctx = ctx.ok_or_else(|| AppError::internal("no application state"))?;
    let uid = session.get::<i64>(USER_ID).ok().flatten();
    let generation = session.get::<i64>(GENERATION).ok().flatten();
    let login_at = session.get::<i64>(LOGIN_AT).ok().flatten().unwrap_or(0);
    let sid = session
        .get::<String>(SESSION_ID)
        .ok()
        .flatten()
        .unwrap_or_default();
    let (Some(uid), Some(generation)) = (uid, generation) else {
        return Err(AppError::Unauthenticated);
    };
    if chrono::Utc::now().timestamp() - login_at > SESSION_MAX_HOURS * 3600 {
        session.purge();
        return Err(AppError::Unauthenticated);
    }
    let user = web::block(move || users::session_user(&ctx, uid, generation, &sid)).await??;
    let Some(user) = user else {
        session.purge();
        return Err(AppError::Unauthenticated);
    };
    let csrf = csrf_token(&session);
    Ok(Auth {
        user,
        session,
        csrf,
    })
}

/// The page to show after a login: the one that asked for it, if it is one of ours.
pub fn after_login(session: &Session) -> String {
    match session.get::<String>(AFTER_LOGIN).ok().flatten() {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/login") => p,
        _ => "/".to_string(),
    }
}

/// A submitted form whose `csrf_token` matched the session's. Fields are kept as sent,
/// in order, so that a repeated field (`name=a&name=b`) keeps all its values.
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The field's value, or empty if it was not sent.
    pub fn text(&self, key: &str) -> String {
        self.get(key).unwrap_or_default().to_string()
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub fn csrf_matches(session: &Session, sent: Option<&str>) -> bool {
    match (session.get::<String>(CSRF).ok().flatten(), sent) {
        (Some(expected), Some(sent)) if !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
        }
        _ => false,
    }
}

impl FromRequest for Form {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Form, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = checked_form(req, payload);
        Box::pin(async move { checked.await.map(|(form, _)| form) })
    }
}

/// Reads a form body and checks its CSRF token (and that no value holds a NUL): the
/// fields as sent, and the body for a typed reading.
fn checked_form(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<(Form, web::Bytes), AppError>> {
    let session = req.get_session();
    let body = web::Bytes::from_request(req, payload);
    async move {
        let body = body.await;
        let bytes = super::read_body(&body, "form")?.clone();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| AppError::BadRequest("the form is not valid URL-encoded data".into()))?;
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(AppError::nul_character());
        }
        let form = Form { pairs };
        if !csrf_matches(&session, form.get("csrf_token")) {
            return Err(AppError::Csrf);
        }
        Ok((form, bytes))
    }
}

/// A submitted form whose CSRF token matched the session's, read into `T` (missing fields
/// take `T`'s defaults; a field sent twice, or of the wrong shape, is a 400 naming it).
/// Forms with a repeated field (a selection of rows) use `Form::all` instead.
pub struct CsrfForm<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<CsrfForm<T>, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = checked_form(req, payload);
        Box::pin(async move {
            let (_, bytes) = checked.await?;
            serde_urlencoded::from_bytes(&bytes)
                .map(CsrfForm)
                .map_err(|e| AppError::BadRequest(format!("the form is not valid: {e}")))
        })
    }
}
