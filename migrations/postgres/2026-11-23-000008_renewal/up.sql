CREATE TABLE nonces (
    digest TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    host_id TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX nonces_expires_at ON nonces (expires_at);
CREATE INDEX nonces_host ON nonces (host_id, created_at);
ALTER TABLE settings ADD COLUMN renewal_interval_minutes INTEGER NOT NULL DEFAULT 60;
ALTER TABLE hosts ADD COLUMN renewal_allowed_until TIMESTAMP;
