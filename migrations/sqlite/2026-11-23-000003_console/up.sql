ALTER TABLE settings ADD COLUMN audit_anchor_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE settings ADD COLUMN audit_anchor_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';
ALTER TABLE settings ADD COLUMN updated_at TIMESTAMP;

CREATE TABLE login_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    success BOOLEAN NOT NULL
);
CREATE INDEX login_attempts_username ON login_attempts (username, at);
CREATE INDEX login_attempts_address ON login_attempts (address, at);
CREATE INDEX audit_events_category ON audit_events (category, id);
CREATE INDEX audit_events_actor ON audit_events (actor, id);
