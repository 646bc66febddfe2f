//! Whether this process can do its work (`/readyz`): the database answers, the key of the
//! CA that signs new certificates answers, and every CRL this server publishes is still
//! within its validity.

use diesel::connection::SimpleConnection;

use super::Ctx;
use crate::db;

/// One readiness check: whether it passed, and what was found.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SignerCheck {
    /// The CA's number (as on the CA page).
    pub issuer_id: i64,
    /// Where its key is: "key file" or the PKCS#11 token and object.
    pub key: String,
    /// Whether the key answered now (a PKCS#11 token was reached).
    pub reachable: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok`, or `unavailable` when any check failed.
    pub status: &'static str,
    pub database: Check,
    pub signer: SignerCheck,
    pub crl: Check,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database.ok && self.signer.reachable && self.crl.ok
    }
}

fn database(ctx: &Ctx) -> Check {
    match db::get(&ctx.pool).and_then(|mut c| {
        c.batch_execute("SELECT 1")
            .map_err(|e| crate::error::AppError::internal_from("the database check", e))
    }) {
        Ok(()) => Check {
            ok: true,
            detail: "the database answers".into(),
        },
        Err(e) => {
            // The cause may name hosts and users: it goes to the log, not to the world.
            e.report();
            Check {
                ok: false,
                detail: "the database does not answer (the cause is in the server log)".into(),
            }
        }
    }
}

fn signer(ctx: &Ctx) -> SignerCheck {
    let ca = ctx.pki.signing();
    let (key, checked) = match ca.signer() {
        Some(k) => (k.describe(), k.check().map_err(|e| e.to_string())),
        None => (
            "offline".to_string(),
            Err("the key is not on this server".to_string()),
        ),
    };
    SignerCheck {
        issuer_id: ca.id,
        key,
        reachable: checked.is_ok(),
        error: checked.err(),
    }
}

fn crl(ctx: &Ctx) -> Check {
    let now = db::now();
    let set = ctx.pki.issuers();
    let mut stale = Vec::new();
    let mut soonest: Option<chrono::NaiveDateTime> = None;
    for &id in &set.publishing {
        match ctx.pki.crl_of(id) {
            Some(c) if c.next_update > now => {
                soonest = Some(soonest.map_or(c.next_update, |s| s.min(c.next_update)));
            }
            Some(c) if c.der.is_empty() => stale.push(format!("CA {id} has no CRL")),
            Some(c) => stale.push(format!(
                "the CRL of CA {id} expired at {} UTC",
                c.next_update.format("%Y-%m-%d %H:%M:%S")
            )),
            None => stale.push(format!("CA {id} has no CRL")),
        }
    }
    if stale.is_empty() {
        Check {
            ok: true,
            detail: soonest.map_or("no CA publishes a CRL".into(), |s| {
                format!("next update {} UTC", s.format("%Y-%m-%d %H:%M:%S"))
            }),
        }
    } else {
        Check {
            ok: false,
            detail: stale.join("; "),
        }
    }
}

/// Runs every check (blocking: the database and perhaps a PKCS#11 token are asked).
pub fn readiness(ctx: &Ctx) -> Readiness {
    let mut r = Readiness {
        status: "ok",
        database: database(ctx),
        signer: signer(ctx),
        crl: crl(ctx),
    };
    if !r.ready() {
        r.status = "unavailable";
    }
    r
}
