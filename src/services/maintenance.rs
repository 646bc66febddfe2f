//! Periodic work: the CRL is re-signed, old audit events and login attempts are removed.

use super::Ctx;
use crate::db;
use crate::models::login_attempt::LoginAttempt;

/// Runs at start and every hour. Failures are logged and retried next time.
pub fn hourly(ctx: &Ctx) {
    if let Err(e) = super::pki::rebuild_crl(ctx) {
        log::error!("hourly CRL rebuild failed: {e}");
        super::notifications::crl_failed(ctx, &e);
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
            if let Err(e) = super::renewal::sweep_nonces(ctx) {
                log::error!("removing expired nonces failed: {e}");
            }
        }
        Err(e) => log::error!("maintenance cannot reach the database: {e}"),
    }
    // After retention, which moves the chain's anchor.
    match super::audit_log::full_check(ctx) {
        Ok(super::audit::ChainStatus::Intact { .. }) => {}
        Ok(super::audit::ChainStatus::Broken { at_id, .. }) => log::error!(
            "the audit chain is broken at event {at_id}: an event was changed or removed outside hostca"
        ),
        Err(e) => log::error!("verifying the audit chain failed: {e}"),
    }
}
