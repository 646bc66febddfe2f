//! What every page shares: the layout context, flash messages and time formatting.

use actix_session::Session;
use actix_web::HttpResponse;
use askama::Template;
use chrono::NaiveDateTime;

use crate::error::AppError;
use crate::models::user::Role;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub kind: String,
    pub message: String,
}

/// The layout's data: title, active section, who is logged in, the CSRF token for the
/// forms on the page, and the flash messages left by the previous request.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub title: String,
    pub nav: &'static str,
    pub username: String,
    pub role: String,
    pub can_change: bool,
    pub csrf: String,
    pub flash: Vec<Flash>,
}

impl Page {
    /// A page without a logged-in user (login, errors).
    pub fn bare(title: &str) -> Page {
        Page {
            title: title.to_string(),
            ..Page::default()
        }
    }

    pub fn logged_in(&self) -> bool {
        !self.username.is_empty()
    }

    /// The side navigation this user sees: each heading of `NAVIGATION` with the links
    /// their role reaches, and no heading left without a link. A role that does not parse
    /// sees what a viewer sees.
    pub fn navigation(&self) -> Vec<(&'static str, Vec<&'static NavLink>)> {
        let role = Role::parse(&self.role).unwrap_or(Role::Viewer);
        NAVIGATION
            .iter()
            .map(|(heading, links)| {
                let shown = links.iter().filter(|l| role.at_least(l.least)).collect();
                (*heading, shown)
            })
            .filter(|(_, links): &(_, Vec<_>)| !links.is_empty())
            .collect()
    }
}

/// A link of the side navigation: where it goes, what it says, the section a page names
/// in `Page::nav` to be marked as the current one, and the least role that sees it.
#[derive(Debug)]
pub struct NavLink {
    pub path: &'static str,
    pub label: &'static str,
    pub section: &'static str,
    pub least: Role,
}

const fn link(
    path: &'static str,
    label: &'static str,
    section: &'static str,
    least: Role,
) -> NavLink {
    NavLink {
        path,
        label,
        section,
        least,
    }
}

/// The side navigation, in its order, under its headings; base.html renders it. A page
/// that a role may not open has that role as its `least`, so the link is not offered to
/// users who would only get a 403.
pub const NAVIGATION: &[(&str, &[NavLink])] = &[
    (
        "Security",
        &[
            link("/", "Overview", "overview", Role::Viewer),
            link("/security/tokens", "Tokens", "tokens", Role::Viewer),
            link(
                "/security/certificates",
                "Certificates",
                "certificates",
                Role::Viewer,
            ),
            link("/security/hosts", "Hosts", "hosts", Role::Viewer),
            link(
                "/security/host-mappings",
                "Host mappings",
                "mappings",
                Role::Viewer,
            ),
            link("/security/ca", "Certificate authority", "ca", Role::Viewer),
            link(
                "/security/settings",
                "Global security settings",
                "settings",
                Role::Viewer,
            ),
            link("/security/audit", "Audit events", "audit", Role::Viewer),
            link(
                "/security/notifications",
                "Notifications",
                "notifications",
                Role::Viewer,
            ),
        ],
    ),
    (
        "Administration",
        &[link("/admin/users", "Users", "users", Role::Administrator)],
    ),
];

const FLASH_KEY: &str = "flash";

/// Leaves a message for the next page this session renders.
pub fn flash(session: &Session, kind: &str, message: impl Into<String>) {
    let mut list: Vec<Flash> = session.get(FLASH_KEY).ok().flatten().unwrap_or_default();
    list.push(Flash {
        kind: kind.to_string(),
        message: capitalised(&message.into()),
    });
    let _ = session.insert(FLASH_KEY, list);
}

pub fn take_flash(session: &Session) -> Vec<Flash> {
    let list = session.get(FLASH_KEY).ok().flatten().unwrap_or_default();
    session.remove(FLASH_KEY);
    list
}

/// A form that was not saved and is shown again: 422 with the field messages, or 409 for a
/// name already taken; any other failure is the request's error.
pub fn rejected(
    e: crate::services::FormError,
) -> Result<(actix_web::http::StatusCode, crate::services::FieldErrors), AppError> {
    use crate::services::FormError;
    match e {
        FormError::Invalid(f) => Ok((actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, f)),
        FormError::Conflict(f) => Ok((actix_web::http::StatusCode::CONFLICT, f)),
        FormError::Other(e) => Err(e),
    }
}

/// Messages are often written to be joined into sentences ("the form has expired; ...");
/// shown on their own, in a flash or an error page, they start with a capital letter. A
/// message that starts with a name (`web01.example.com has no mapping`) is left as it is:
/// names are case-sensitive to the reader, so only a plain lowercase word is changed.
pub fn capitalised(s: &str) -> String {
    let first = s.split(' ').next().unwrap_or_default();
    if first.is_empty() || !first.chars().all(|c| c.is_ascii_lowercase()) {
        return s.to_string();
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Renders a template into a response with `status`.
pub fn render<T: Template>(
    status: actix_web::http::StatusCode,
    t: &T,
) -> Result<HttpResponse, AppError> {
    let body = t
        .render()
        .map_err(|e| AppError::internal_from("template", e))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub fn ok<T: Template>(t: &T) -> Result<HttpResponse, AppError> {
    render(actix_web::http::StatusCode::OK, t)
}

pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// Error pages keep the console's navigation for a logged-in user: a 400, 403 or 404 from
/// a page handler is rendered again inside the user's layout, so a mistyped address or a
/// refused action is one click away from the rest of the console. Anonymous requests and
/// the JSON API keep their own responses.
pub async fn keep_navigation(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_session::SessionExt;
    use actix_web::FromRequest;
    let res = next.call(req).await?;
    let wanted =
        matches!(res.status().as_u16(), 400 | 403 | 404) && has_html_error(res.response().error());
    if !wanted || !super::auth::has_user(&res.request().get_session()) {
        return Ok(res.map_into_boxed_body());
    }
    let request = res.request().clone();
    let Ok(auth) = super::auth::Auth::extract(&request).await else {
        return Ok(res.map_into_boxed_body());
    };
    let page = auth.page(res.status().canonical_reason().unwrap_or("Error"), "");
    let response = match res
        .response()
        .error()
        .and_then(|e| e.as_error::<AppError>())
    {
        Some(err) => err.page_response(page),
        None => return Ok(res.map_into_boxed_body()),
    };
    Ok(res.into_response(response))
}

fn has_html_error(e: Option<&actix_web::Error>) -> bool {
    e.is_some_and(|e| e.as_error::<AppError>().is_some())
}

/// `2026-11-23 14:05 UTC`
pub fn utc(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-11-23T14:05:09Z`, for `<time datetime=...>`.
pub fn iso(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A relative hint: `in 3 hours`, `5 minutes ago`, `just now`.
pub fn relative(t: NaiveDateTime, now: NaiveDateTime) -> String {
    let secs = (t - now).num_seconds();
    let (n, unit) = match secs.abs() {
        s if s < 45 => return "just now".to_string(),
        s if s < 90 * 60 => ((s + 30) / 60, "minute"),
        s if s < 36 * 3600 => ((s + 1800) / 3600, "hour"),
        s if s < 60 * 86400 => ((s + 43200) / 86400, "day"),
        s if s < 730 * 86400 => (s / (30 * 86400), "month"),
        s => (s / (365 * 86400), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if secs > 0 {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// A time cell: the UTC time and its relative hint.
#[derive(Clone, Debug, Default)]
pub struct When {
    pub utc: String,
    pub iso: String,
    pub rel: String,
}

impl When {
    pub fn of(t: NaiveDateTime, now: NaiveDateTime) -> When {
        When {
            utc: utc(t),
            iso: iso(t),
            rel: relative(t, now),
        }
    }

    pub fn maybe(t: Option<NaiveDateTime>, now: NaiveDateTime) -> Option<When> {
        t.map(|t| When::of(t, now))
    }
}

/// A CSV download named `hostca-{what}-<UTC time>.csv`; the caller adds the body.
pub fn csv_download(what: &str) -> actix_web::HttpResponseBuilder {
    let name = format!(
        "hostca-{what}-{}.csv",
        crate::db::now().format("%Y%m%d-%H%M%S")
    );
    let mut r = HttpResponse::Ok();
    r.content_type("text/csv; charset=utf-8").insert_header((
        "Content-Disposition",
        format!("attachment; filename=\"{name}\""),
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_on_their_own_start_with_a_capital() {
        assert_eq!(capitalised("the form has expired"), "The form has expired");
        assert_eq!(capitalised("Token a deleted."), "Token a deleted.");
        assert_eq!(
            capitalised("web01.example.com has no mapping named x"),
            "web01.example.com has no mapping named x"
        );
        assert_eq!(capitalised("cannot sort by 'x'"), "Cannot sort by 'x'");
        assert_eq!(capitalised(""), "");
    }

    #[test]
    fn the_navigation_offers_each_role_what_it_may_open() {
        let seen = |role: &str| -> Vec<(&str, Vec<&str>)> {
            let page = Page {
                role: role.to_string(),
                ..Page::default()
            };
            page.navigation()
                .into_iter()
                .map(|(h, links)| (h, links.iter().map(|l| l.path).collect()))
                .collect()
        };
        let admin = seen("administrator");
        assert_eq!(admin.len(), 2);
        assert_eq!(admin[1], ("Administration", vec!["/admin/users"]));
        assert_eq!(admin[0].1.len(), 9);
        assert_eq!(admin[0].1[0], "/", "the overview comes first");
        for role in ["security_admin", "viewer", "no-such-role"] {
            let links = seen(role);
            assert_eq!(links.len(), 1, "{role}: no Administration heading");
            assert_eq!(links[0].1, admin[0].1, "{role}: every Security page");
        }
    }

    #[test]
    fn relative_hints_read_naturally() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        let m = chrono::Duration::minutes;
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now + m(5), now), "in 5 minutes");
        assert_eq!(relative(now - m(60), now), "60 minutes ago");
        assert_eq!(relative(now + m(24 * 60), now), "in 24 hours");
        assert_eq!(relative(now - m(3 * 24 * 60), now), "3 days ago");
        assert_eq!(relative(now + m(400 * 24 * 60), now), "in 13 months");
    }
}
