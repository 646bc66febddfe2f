//! Group commit: one writer thread runs many small write transactions as savepoints of
//! one database transaction, and answers each caller only after that transaction has
//! committed. Acknowledged still means stored; the commit cost (WAL pages, fsync, the
//! write lock) is paid once per batch instead of once per request.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;

use super::{DbConn, Pool};
use crate::error::AppError;

type Reply = Box<dyn FnOnce(Result<(), AppError>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConn) -> Reply + Send>;

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
        std::thread::Builder::new()
            .name("hostca-writer".into())
            .spawn(move || run(pool, receiver))
            .expect("the writer thread starts");
        GroupWriter { sender }
    }

    /// Runs `f` as one savepoint of the next batch; returns once the batch committed.
    /// An error from `f` rolls back only `f`'s own work.
    pub fn write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Result<T, AppError>>(1);
        let job: Job = Box::new(move |conn: &mut DbConn| {
            let result = conn.transaction(f);
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

fn run(pool: Pool, receiver: Receiver<Job>) {
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
            for job in batch {
                replies.push(job(c));
            }
            Ok(())
        });
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
