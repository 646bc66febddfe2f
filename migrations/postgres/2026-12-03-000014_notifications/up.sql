-- Notifications (issue 14): where they go, and an outbox of deliveries. The unique
-- (target_id, dedupe_key) index is what keeps an event from being sent twice, across
-- restarts and server processes: enqueueing an event that is already queued is a no-op.
CREATE TABLE notification_targets (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL,
    secret_sealed BYTEA,
    events TEXT NOT NULL,
    digest BOOLEAN NOT NULL DEFAULT FALSE,
    digest_hour INTEGER NOT NULL DEFAULT 6,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    smtp_host TEXT NOT NULL DEFAULT '',
    smtp_port INTEGER NOT NULL DEFAULT 587,
    smtp_tls TEXT NOT NULL DEFAULT 'required',
    smtp_username TEXT NOT NULL DEFAULT '',
    smtp_from TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE notification_deliveries (
    id BIGSERIAL PRIMARY KEY,
    target_id BIGINT NOT NULL REFERENCES notification_targets(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE UNIQUE INDEX notification_deliveries_dedupe ON notification_deliveries (target_id, dedupe_key);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_created ON notification_deliveries (created_at);
