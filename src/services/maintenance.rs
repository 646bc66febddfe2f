//! Periodic work: the CRL is re-signed, old audit events and login attempts are removed.

use super::Ctx;
use crate::db;
use crate::models::login_attempt::LoginAttempt;

/// Runs at start and every hour. Failures are logged and retried next time.
pub fn hourly(ctx: &Ctx) {
    if let Err(e) = super::pki::rebuild_crl(ctx) {
        log::error!("hourly CRL rebuild failed: {e}");
    }
    match db::get(&ctx.pool) {
        Ok(mut conn) => {
            match super::audit::apply_retention(&mut conn) {
                Ok(0) => {}
                Ok(n) => log::info!("audit retention removed {n} old events"),
                Err(e) => log::error!("audit retention failed: {e}"),
            }
            let cutoff = db::now() - chrono::Duration::days(1);
            if let Err(e) = LoginAttempt::prune(&mut conn, cutoff) {
                log::error!("pruning login attempts failed: {e}");
            }
        }
        Err(e) => log::error!("maintenance cannot reach the database: {e}"),
    }
}
