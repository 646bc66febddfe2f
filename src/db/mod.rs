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
                    AppError::Internal(format!("cannot create {}: {e}", parent.display()))
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
        .map_err(|e| AppError::Internal(format!("cannot open the database: {e}")))?;
    let mut conn = pool
        .get()
        .map_err(|e| AppError::Internal(format!("cannot open the database: {e}")))?;
    run_migrations(&mut conn)?;
    Ok(pool)
}

fn run_migrations(conn: &mut DbConn) -> Result<(), AppError> {
    let result = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|_| ()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| AppError::Internal(format!("database migration failed: {e}")))
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

/// Runs `f` in one write transaction. The first statement takes the database's write
/// lock (SQLite) or the settings row lock (PostgreSQL), which serialises writers so that
/// the audit chain stays linear and SQLite never has to upgrade a read lock.
pub fn write_tx<T, F>(conn: &mut DbConn, f: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConn) -> Result<T, AppError>,
{
    let _writer = sqlite_writer_lock(conn);
    let mark = crate::services::audit::pending_mark();
    let result = conn.transaction(|c| {
        c.batch_execute(LOCK_STATEMENT)?;
        f(c)
    });
    // Audit events reach the append-only sink only once they are committed.
    crate::services::audit::pending_done(mark, result.is_ok());
    result
}

/// Takes a pooled connection; an exhausted or unreachable database is a 503.
pub fn get(pool: &Pool) -> Result<PooledConn, AppError> {
    pool.get()
        .map_err(|e| AppError::Unavailable(format!("the database is not reachable: {e}")))
}
