//! The database: one binary over SQLite (the embedded default) and PostgreSQL, picked by
//! the URL. Each backend has its own migrations folder; both describe the same schema.

pub mod group_commit;
pub mod schema;

use std::time::Duration;

use chrono::{NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::AppError;

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    // Last: SQLite accepts any path, so it must not shadow the PostgreSQL URL.
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnManager>;
pub type PooledConn = r2d2::PooledConnection<ConnManager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Which backend a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// `sqlite://path` and a plain path both name a SQLite file.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// A connection manager that keeps the real connection error: the stock manager for a
/// MultiConnection reports every PostgreSQL failure as an "invalid connection url".
#[derive(Clone, Debug)]
pub struct ConnManager {
    url: String,
}

impl ManageConnection for ConnManager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match Backend::of(&self.url) {
            Backend::Postgres => PgConnection::establish(&self.url).map(DbConn::Pg),
            Backend::Sqlite => {
                SqliteConnection::establish(sqlite_path(&self.url)).map(DbConn::Sqlite)
            }
        }
        .map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// SQLite settings that are per connection: WAL lets pages read while a host enrolls,
/// `synchronous = FULL` syncs the log at every commit so that what was acknowledged
/// survives a power cut, not only a killed process (with group commit that is one sync per
/// batch, and costs about 2 % of enrollment throughput), the busy timeout turns lock contention into waiting instead of errors, the savepoint
/// journal of a group commit stays in memory instead of a temporary file, and SQLite's
/// own checkpoint (which would stall the writer for milliseconds) is only a backstop at
/// 40 MB of log: `group_commit` checkpoints on a thread of its own.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConn, r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        if let DbConn::Sqlite(c) = conn {
            c.batch_execute(
                "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                 PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 10000;",
            )
            .map_err(r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Opens the pool and brings the schema up to date.
pub fn connect(url: &str, max_size: u32) -> Result<Pool, AppError> {
    if Backend::of(url) == Backend::Sqlite {
        if let Some(parent) = std::path::Path::new(sqlite_path(url)).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    AppError::internal_from(format!("cannot create {}", parent.display()), e)
                })?;
            }
        }
    }
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        // Long enough to ride out a busy moment, short enough that a database that is
        // away is reported (503) instead of leaving requests hanging.
        .connection_timeout(Duration::from_secs(5))
        // A SQLite file does not drop connections; PostgreSQL may restart under us.
        .test_on_check_out(Backend::of(url) == Backend::Postgres)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(ConnManager {
            url: url.to_string(),
        })
        .map_err(|e| AppError::internal_from("cannot open the database", e))?;
    let mut conn = pool
        .get()
        .map_err(|e| AppError::internal_from("cannot open the database", e))?;
    run_migrations(&mut conn)?;
    Ok(pool)
}

fn run_migrations(conn: &mut DbConn) -> Result<(), AppError> {
    let result = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|_| ()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| AppError::internal_from("database migration failed", e))
}

/// The current time at the precision both backends store (microseconds), so that what
/// is hashed before an insert equals what is read back.
pub fn now() -> NaiveDateTime {
    let t = Utc::now().naive_utc();
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The first statement of every write transaction.
pub(crate) const LOCK_STATEMENT: &str = "UPDATE settings SET id = id WHERE id = 1";

/// SQLite has one writer at a time, and its busy handler waits by sleeping (up to 100 ms
/// a turn). Queueing writers in the process instead keeps the tail latency low.
pub(crate) fn sqlite_writer_lock(conn: &DbConn) -> Option<std::sync::MutexGuard<'static, ()>> {
    match conn {
        DbConn::Sqlite(_) => Some(SQLITE_WRITER.lock().unwrap_or_else(|p| p.into_inner())),
        DbConn::Pg(_) => None,
    }
}

/// A write outside the audit chain, of data that can be made again (pre-produced OCSP
/// responses): on SQLite it waits its turn with the other writers; on PostgreSQL it
/// takes none of their locks, so it never holds up an enrollment.
pub fn write_detached<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    let _writer = sqlite_writer_lock(conn);
    f(conn)
}

/// Runs `f` in one write transaction. The first statement takes the database's write
/// lock (SQLite) or the settings row lock (PostgreSQL), which serialises writers so that
/// the audit chain stays linear and SQLite never has to upgrade a read lock.
pub fn write_tx<T, F>(conn: &mut DbConn, f: F) -> Result<T, AppError>
where
    F: FnOnce(&mut WriteTx) -> Result<T, AppError>,
{
    let _writer = sqlite_writer_lock(conn);
    let mark = crate::services::audit::pending_mark();
    let counted = crate::metrics::pending_mark();
    let result = conn.transaction(|c| {
        c.batch_execute(LOCK_STATEMENT)?;
        f(&mut WriteTx {
            conn: c,
            memo: None,
        })
    });
    // Audit events reach the append-only sink only once they are committed.
    crate::services::audit::pending_done(mark, result.is_ok());
    crate::metrics::pending_done(counted, result.is_ok());
    result
}

/// What a transaction leaves for after its commit (audit events for the sink, counts for
/// `/metrics`): on commit everything waiting is taken; otherwise what was added since
/// `mark` is dropped with the rolled-back work, and nothing is taken.
pub(crate) fn settle_pending<T>(
    pending: &std::cell::RefCell<Vec<T>>,
    mark: usize,
    committed: bool,
) -> Vec<T> {
    let mut p = pending.borrow_mut();
    if committed {
        std::mem::take(&mut *p)
    } else {
        p.truncate(mark);
        Vec::new()
    }
}

/// A connection inside a write transaction that holds the writers' lock. Only `write_tx`
/// and the group writer make one, so a function that takes a `WriteTx` (`audit::record`,
/// which links each event to the last one) can only run where the lock makes the chain
/// linear and its writes commit or vanish together. Inside a group-commit batch it also
/// carries the batch's memo: the settings row and the audit chain's head as the batch's
/// earlier jobs left them. Everywhere else it is a plain connection (`Deref`).
pub struct WriteTx<'c> {
    conn: &'c mut DbConn,
    memo: Option<&'c mut group_commit::Memo>,
}

impl<'c> WriteTx<'c> {
    fn in_batch(conn: &'c mut DbConn, memo: &'c mut group_commit::Memo) -> WriteTx<'c> {
        WriteTx {
            conn,
            memo: Some(memo),
        }
    }

    /// The settings row, read once per group-commit batch.
    pub fn settings(&mut self) -> diesel::QueryResult<crate::models::settings::Settings> {
        if let Some(s) = self.memo.as_ref().and_then(|m| m.settings.as_ref()) {
            return Ok(s.clone());
        }
        let s = crate::models::settings::Settings::load(self.conn)?;
        if let Some(m) = self.memo.as_mut() {
            m.settings = Some(s.clone());
        }
        Ok(s)
    }

    /// The settings row is being changed: read it again next time.
    pub fn forget_settings(&mut self) {
        if let Some(m) = self.memo.as_mut() {
            m.settings = None;
        }
    }

    /// The hash of the newest audit event as this batch wrote it (`None` outside a batch
    /// or before its first event: read it from the table).
    pub fn chain_head(&self) -> Option<&str> {
        self.memo.as_ref().and_then(|m| m.chain_head.as_deref())
    }

    /// Remembers the hash of the audit event just written (inside a batch only).
    pub fn set_chain_head(&mut self, hash: &str) {
        if let Some(m) = self.memo.as_mut() {
            m.chain_head = Some(hash.to_string());
        }
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        self.conn
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut DbConn {
        self.conn
    }
}

/// Takes a pooled connection; an exhausted or unreachable database is a 503.
pub fn get(pool: &Pool) -> Result<PooledConn, AppError> {
    pool.get()
        .map_err(|e| AppError::Unavailable(format!("the database is not reachable: {e}")))
}

/// Whether a database error is worth a retry though diesel gives it no kind of its own:
/// SQLite's SQLITE_BUSY/SQLITE_LOCKED after the busy timeout. diesel's SQLite backend maps
/// only constraint codes to kinds and keeps neither the result code nor an extended one,
/// so the message is all there is. (PostgreSQL's restarts arrive as `ClosedConnection`:
/// diesel checks the connection's status after every failed statement.)
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let m = info.message();
            m == "database is locked" || m.starts_with("database table is locked")
        }
        _ => false,
    }
}
