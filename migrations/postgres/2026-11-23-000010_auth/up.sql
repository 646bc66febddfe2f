-- Sessions ended by logging out: a copied cookie of one of them is refused, while the
-- user's other sessions continue. Rows go once the session would have expired anyway.
CREATE TABLE ended_sessions (
    session_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    ended_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX ended_sessions_expires_at ON ended_sessions (expires_at);
-- Login throttling counts failures per (username, address).
CREATE INDEX login_attempts_username_address ON login_attempts (username, address, at);
