//! Group commit: one writer thread runs many small write transactions as savepoints of
//! one database transaction, and answers each caller only after that transaction has
//! committed. Acknowledged still means stored; the commit cost (WAL pages, fsync, the
//! write lock) is paid once per batch instead of once per request.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;

use super::{DbConn, Pool, WriteTx};
use crate::error::AppError;
use crate::models::settings::Settings;

type Reply = Box<dyn FnOnce(Result<(), AppError>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConn, &mut Memo) -> Reply + Send>;

/// Most jobs in one transaction: bounds the latency a batch adds to its first caller.
const MAX_BATCH: usize = 256;

pub struct GroupWriter {
    sender: SyncSender<Job>,
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupWriter")
    }
}

impl GroupWriter {
    /// Starts the writer thread. It stops when the last `GroupWriter` handle is dropped.
    pub fn start(pool: Pool) -> GroupWriter {
        let (sender, receiver) = mpsc::sync_channel::<Job>(4096);
        let (wal_grew, wal_receiver) = mpsc::sync_channel::<()>(1);
        let checkpoint_pool = pool.clone();
        std::thread::Builder::new()
            .name("hostca-checkpoint".into())
            .spawn(move || checkpoint(checkpoint_pool, wal_receiver))
            .expect("the checkpoint thread starts");
        std::thread::Builder::new()
            .name("hostca-writer".into())
            .spawn(move || run(pool, receiver, wal_grew))
            .expect("the writer thread starts");
        GroupWriter { sender }
    }

    /// Runs `f` as one savepoint of the next batch; returns once the batch committed.
    /// An error from `f` rolls back only `f`'s own work.
    pub fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTx) -> Result<T, AppError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Result<T, AppError>>(1);
        let job: Job = Box::new(move |conn: &mut DbConn, memo: &mut Memo| {
            let mark = crate::services::audit::pending_mark();
            let counted = crate::metrics::pending_mark();
            let result = conn.transaction(|c| f(&mut WriteTx::in_batch(c, memo)));
            if result.is_err() {
                // Its savepoint rolled back: what it remembered may be gone with it.
                *memo = Memo::default();
                crate::services::audit::pending_done(mark, false);
                crate::metrics::pending_done(counted, false);
            }
            Box::new(move |committed: Result<(), AppError>| {
                let _ = tx.send(committed.and(result));
            })
        });
        self.sender
            .send(job)
            .map_err(|_| AppError::Unavailable("the database writer has stopped".into()))?;
        rx.recv().map_err(|_| {
            AppError::Unavailable(
                "the change was not saved: the database is not reachable; try again".into(),
            )
        })?
    }
}

/// What the jobs of one batch would otherwise each read again: the batch holds the write
/// lock, so only its own jobs can change these, and a job that fails (its savepoint
/// rolled back) makes the writer forget them. Jobs reach it only through their `WriteTx`.
#[derive(Default)]
pub struct Memo {
    pub(super) settings: Option<Settings>,
    pub(super) chain_head: Option<String>,
}

const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// Copies SQLite's write-ahead log into the database file on its own thread, so that the
/// writer does not stop to do it when the log reaches SQLite's automatic checkpoint size.
/// Ends with the writer.
fn checkpoint(pool: Pool, wal_grew: Receiver<()>) {
    while wal_grew.recv().is_ok() {
        std::thread::sleep(Duration::from_millis(50));
        let Ok(mut conn) = pool.get() else { continue };
        // Most of the copying runs beside the writer; the rest, a few pages, between two
        // of its batches, so that the log starts again from the beginning instead of
        // growing until the writer has to checkpoint it itself.
        let result = conn.batch_execute(CHECKPOINT).and_then(|()| {
            let _writer = super::sqlite_writer_lock(&conn);
            conn.batch_execute(CHECKPOINT)
        });
        if let Err(e) = result {
            log::warn!("checkpointing the write-ahead log failed: {e}");
        }
    }
}

fn run(pool: Pool, receiver: Receiver<Job>, wal_grew: SyncSender<()>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut conn = match pool.get() {
            Ok(c) => c,
            Err(e) => {
                log::error!("the database writer cannot get a connection: {e}");
                // Nothing ran: every caller hears that the database is unreachable.
                drop(batch);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _writer = super::sqlite_writer_lock(&conn);
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let committed = conn.transaction::<_, AppError, _>(|c| {
            c.batch_execute(super::LOCK_STATEMENT)?;
            let mut memo = Memo::default();
            for job in batch {
                replies.push(job(c, &mut memo));
            }
            Ok(())
        });
        crate::services::audit::pending_done(0, committed.is_ok());
        crate::metrics::pending_done(0, committed.is_ok());
        if committed.is_ok() {
            crate::metrics::observe_batch(replies.len());
        }
        if committed.is_ok() && matches!(*conn, DbConn::Sqlite(_)) {
            let _ = wal_grew.try_send(());
        }
        let failure = committed.err().map(|e| e.to_string());
        for reply in replies {
            reply(match &failure {
                None => Ok(()),
                Some(e) => Err(AppError::Unavailable(format!(
                    "the change could not be saved ({e}); try again"
                ))),
            });
        }
    }
}
