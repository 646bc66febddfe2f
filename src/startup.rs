//! Builds the application: prepares the data directory and database, then binds the
//! HTTP server (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Condition, DefaultHeaders, Logger};
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::db::group_commit::GroupWriter;
use crate::error::AppError;
use crate::services::{setup, Ctx, Site};

pub const SESSION_COOKIE: &str = "hostca_session";
/// Under `--tls`: the `__Host-` prefix makes browsers refuse the cookie unless it is
/// Secure, for Path=/ and without a Domain, so no other host or plain-HTTP page can set it.
pub const SESSION_COOKIE_TLS: &str = "__Host-hostca_session";

pub struct Application {
    port: u16,
    tls: bool,
    server: Server,
    pub ctx: Ctx,
}

impl Application {
    pub fn build(config: &Config) -> Result<Application, AppError> {
        let prepared = setup::prepare(
            &config.data_dir,
            &config.database_url(),
            config.admin_password.as_deref(),
            &config.ca,
            config.pool_size,
            &crate::services::audit::SinkTarget::from_flag(
                &config.data_dir,
                config.audit_log.as_deref(),
            ),
        )?;
        if let Some(password) = &prepared.generated_admin_password {
            // Printed once, on purpose not through the logger: log files outlive terminals.
            println!(
                "Created the user 'admin' with the password: {password}\n\
                 (also saved to {}; change it after the first login)",
                config.data_dir.join(setup::INITIAL_PASSWORD_FILE).display()
            );
        }
        check_plain_http(config)?;
        let listener = TcpListener::bind(&config.listen).map_err(|e| {
            AppError::internal_from(format!("cannot listen on {}", config.listen), e)
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| AppError::internal_from("the listening address", e))?
            .port();
        let ctx = Ctx {
            pool: prepared.pool.clone(),
            token_key: prepared.token_key,
            data_dir: config.data_dir.clone(),
            pki: Arc::new(prepared.pki),
            writer: Arc::new(GroupWriter::start(prepared.pool.clone())),
            tls: config.tls,
            audit_verified: Default::default(),
            site: Arc::new(Site {
                public_url: config.public_url(port),
                server_names: config.server_names(),
                resolver: Default::default(),
            }),
        };
        if let Some(m) = config.leaf_validity_minutes {
            log::warn!("host certificates last {m} minute(s) (--leaf-validity-minutes), not the configured days: for renewal drills and tests");
            ctx.pki
                .leaf_validity_minutes
                .store(m, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(h) = config.ocsp_validity_hours {
            ctx.pki
                .ocsp
                .validity_hours
                .store(h, std::sync::atomic::Ordering::Relaxed);
        }
        if let Ok(mut conn) = crate::db::get(&ctx.pool) {
            if let Err(e) = crate::services::audit::apply_retention(&mut conn) {
                log::error!("audit retention failed: {e}");
            }
        }
        spawn_hourly_crl(&ctx);
        spawn_refusal_flusher(&ctx);
        spawn_notifier(&ctx);
        spawn_ocsp_producer(&ctx);
        let key = Key::from(&prepared.session_key);
        let secure = config.tls;
        let server_cert = if config.tls {
            let names = config.tls_names();
            Some(Arc::new(crate::tls::ServerCert::new(&ctx, names)?))
        } else {
            None
        };
        let data = web::Data::new(ctx.clone());
        let proxies = web::Data::new(crate::web::auth::TrustedProxies(
            config.trusted_proxies.clone(),
        ));
        let metrics_access = web::Data::new(crate::web::health::MetricsAccess {
            token: config.metrics_token.clone(),
            allow: config.metrics_allow.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(proxies.clone())
                .app_data(metrics_access.clone())
                // Inside the session middleware: it reads the session of the request.
                .wrap(actix_web::middleware::from_fn(
                    crate::web::view::keep_navigation,
                ))
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                        .cookie_name(if secure {
                            SESSION_COOKIE_TLS.into()
                        } else {
                            SESSION_COOKIE.into()
                        })
                        .cookie_secure(secure)
                        .cookie_path("/".into())
                        .cookie_domain(None)
                        .cookie_http_only(true)
                        // Lax, not Strict: a link to a console page from mail or a ticket
                        // must arrive with the cookie, or the user seems logged out. Every
                        // POST still needs the session's CSRF token.
                        .cookie_same_site(SameSite::Lax)
                        .cookie_content_security(CookieContentSecurity::Private)
                        .build(),
                )
                .wrap(
                    DefaultHeaders::new()
                        .add(("Cache-Control", "no-store"))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "no-referrer"))
                        .add((
                            "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
                        )),
                )
                // Only over TLS: on plain HTTP the header means nothing to a browser, and a
                // loopback console must stay reachable without a certificate.
                .wrap(Condition::new(
                    secure,
                    DefaultHeaders::new().add(("Strict-Transport-Security", "max-age=31536000")),
                ))
                // The request line and status only: no headers, cookies or bodies.
                .wrap(actix_web::middleware::from_fn(crate::web::refuse_nul))
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .wrap(actix_web::middleware::from_fn(crate::web::health::timed))
                // Outermost: HEAD and over-long addresses are settled before anything else.
                .wrap(actix_web::middleware::from_fn(crate::web::edges))
                .configure(crate::web::configure)
        });
        let mut server = match &server_cert {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config()?),
            None => server.listen(listener),
        }
        .map_err(|e| AppError::internal_from("cannot listen", e))?;
        if let Some(cert) = &server_cert {
            spawn_tls_renewal(cert, &ctx.pki);
        }
        if let Some(w) = config.workers {
            server = server.workers(w);
        }
        let server = server.shutdown_timeout(5).run();
        Ok(Application {
            port,
            tls: config.tls,
            server,
            ctx,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // Refusals of the minute still open are counted in memory: write them now.
        let ctx = self.ctx.clone();
        let _ = web::block(move || crate::services::audit::flush_refusals(&ctx)).await;
        result
    }
}

/// A `Ctx` that does not keep the application alive: background threads hold one and end
/// once the application (its PKI state and writer) is gone.
struct WeakCtx {
    pool: crate::db::Pool,
    token_key: crate::secrets::TokenKey,
    data_dir: std::path::PathBuf,
    pki: std::sync::Weak<crate::services::pki::PkiState>,
    writer: std::sync::Weak<GroupWriter>,
    tls: bool,
    audit_verified: Arc<std::sync::Mutex<Option<crate::services::audit::Verified>>>,
    site: Arc<Site>,
}

impl WeakCtx {
    fn of(ctx: &Ctx) -> WeakCtx {
        WeakCtx {
            pool: ctx.pool.clone(),
            token_key: ctx.token_key.clone(),
            data_dir: ctx.data_dir.clone(),
            pki: Arc::downgrade(&ctx.pki),
            writer: Arc::downgrade(&ctx.writer),
            tls: ctx.tls,
            audit_verified: ctx.audit_verified.clone(),
            site: ctx.site.clone(),
        }
    }

    /// The application's context, or `None` once the application is gone.
    fn upgrade(&self) -> Option<Ctx> {
        Some(Ctx {
            pool: self.pool.clone(),
            token_key: self.token_key.clone(),
            data_dir: self.data_dir.clone(),
            pki: self.pki.upgrade()?,
            writer: self.writer.upgrade()?,
            tls: self.tls,
            audit_verified: self.audit_verified.clone(),
            site: self.site.clone(),
        })
    }
}

/// Re-signs the CRL every hour, so that its next-update never lapses. The thread ends
/// when the application it belongs to is gone.
fn spawn_hourly_crl(ctx: &Ctx) {
    let weak = WeakCtx::of(ctx);
    std::thread::spawn(move || {
        let mut last = Instant::now();
        let mut checked = Instant::now();
        loop {
            std::thread::sleep(Duration::from_secs(5));
            let Some(ctx) = weak.upgrade() else {
                return;
            };
            // The CAs, when another process or a command changed them.
            if let Err(e) = crate::services::pki::reload_if_changed(&ctx) {
                log::warn!("reloading the CAs failed: {e}");
            }
            if last.elapsed() < Duration::from_secs(3600) {
                // Another process on the same database may have published a newer CRL.
                if checked.elapsed() >= Duration::from_secs(30) {
                    checked = Instant::now();
                    if let Err(e) = crate::services::pki::refresh_crl_if_stale(&ctx) {
                        log::warn!("checking for a newer CRL failed: {e}");
                    }
                }
                continue;
            }
            last = Instant::now();
            crate::services::maintenance::hourly(&ctx);
        }
    });
}

/// Plain HTTP carries passwords and token values in clear: only on loopback, unless the
/// operator says otherwise.
fn check_plain_http(config: &Config) -> Result<(), AppError> {
    if config.tls {
        return Ok(());
    }
    let loopback = config
        .listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| config.listen.starts_with("localhost:"));
    if loopback {
        return Ok(());
    }
    if config.insecure_http {
        log::warn!(
            "serving plain HTTP on {}: passwords and token values cross the network in clear; use --tls",
            config.listen
        );
        return Ok(());
    }
    Err(AppError::BadRequest(format!(
        "refusing to serve plain HTTP on the non-loopback address {}: use --tls (HTTPS with a certificate from hostca's CA), or --insecure-http to accept the risk",
        config.listen
    )))
}

/// Checks the TLS certificate every hour and renews it before it expires.
fn spawn_tls_renewal(
    cert: &Arc<crate::tls::ServerCert>,
    pki: &Arc<crate::services::pki::PkiState>,
) {
    let (cert, pki) = (Arc::downgrade(cert), Arc::downgrade(pki));
    std::thread::spawn(move || {
        let mut signing = pki.upgrade().map(|p| p.signing().id);
        loop {
            // Hourly, or within seconds once a CA migration's new CA signs.
            for _ in 0..720 {
                std::thread::sleep(Duration::from_secs(5));
                let Some(p) = pki.upgrade() else { return };
                if Some(p.signing().id) != signing {
                    break;
                }
            }
            let (Some(cert), Some(pki)) = (cert.upgrade(), pki.upgrade()) else {
                return;
            };
            signing = Some(pki.signing().id);
            if let Err(e) = cert.renew_if_due(&pki) {
                log::error!("TLS certificate renewal failed: {e}");
            }
        }
    });
}

/// Writes the aggregated refusals of each minute once it is over. The thread ends with
/// the application.
fn spawn_refusal_flusher(ctx: &Ctx) {
    let weak = WeakCtx::of(ctx);
    std::thread::spawn(move || loop {
        let wait = crate::services::audit::seconds_left_in_minute().clamp(1, 5);
        std::thread::sleep(Duration::from_secs(wait));
        let Some(ctx) = weak.upgrade() else {
            return;
        };
        if let Err(e) = crate::services::audit::flush_closed_refusals(&ctx) {
            log::warn!("writing the aggregated refusals failed: {e}");
        }
    });
}

/// Pre-produces OCSP responses (`services::ocsp::Producer`). The thread ends
/// with the application.
fn spawn_ocsp_producer(ctx: &Ctx) {
    let weak = WeakCtx::of(ctx);
    // Its watermark is taken before the first request is served: a certificate issued in
    // the first round is then after it, not before.
    let mut producer = crate::services::ocsp::Producer::start(ctx).ok();
    std::thread::spawn(move || loop {
        std::thread::sleep(crate::services::ocsp::PRODUCE_EVERY);
        let Some(ctx) = weak.upgrade() else {
            return;
        };
        let round = match producer.as_mut() {
            Some(p) => crate::services::ocsp::Producer::run(p, &ctx, crate::db::now()),
            None => crate::services::ocsp::Producer::start(&ctx).map(|p| {
                producer = Some(p);
                0
            }),
        };
        if let Err(e) = round {
            log::warn!("pre-producing OCSP responses failed: {e}");
        }
    });
}

/// Notifications: scans for events at start and every minute, and sends due deliveries
/// every 2 seconds. The thread ends with the application.
fn spawn_notifier(ctx: &Ctx) {
    let weak = WeakCtx::of(ctx);
    std::thread::spawn(move || {
        let mut scanned: Option<Instant> = None;
        loop {
            let Some(ctx) = weak.upgrade() else {
                return;
            };
            if scanned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                scanned = Some(Instant::now());
                if let Err(e) = crate::services::notifications::scan(&ctx, crate::db::now()) {
                    log::warn!("the notification scan failed: {e}");
                }
            }
            if let Err(e) = crate::services::notifications::deliver_due(&ctx, crate::db::now()) {
                log::warn!("sending notifications failed: {e}");
            }
            drop(ctx);
            std::thread::sleep(Duration::from_secs(2));
        }
    });
}
