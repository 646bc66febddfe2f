CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    session_generation BIGINT NOT NULL DEFAULT 0,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP,
    password_changed_at TIMESTAMP
);

CREATE TABLE hosts (
    id BIGSERIAL PRIMARY KEY,
    host_id TEXT NOT NULL UNIQUE,
    primary_name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL,
    auto_reissue_until TIMESTAMP
);

CREATE TABLE host_mappings (
    id BIGSERIAL PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts(host_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (host_id, name)
);
CREATE INDEX host_mappings_name ON host_mappings (name);

CREATE TABLE tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    value_encrypted BYTEA NOT NULL,
    value_digest TEXT NOT NULL UNIQUE,
    max_uses INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    valid_until TIMESTAMP NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    host_id TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    last_used_by TEXT
);
CREATE INDEX tokens_valid_until ON tokens (valid_until);
CREATE INDEX tokens_created_at ON tokens (created_at);

CREATE TABLE certificates (
    id BIGSERIAL PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    host_id TEXT NOT NULL REFERENCES hosts(host_id),
    subject TEXT NOT NULL,
    names TEXT NOT NULL,
    not_before TIMESTAMP NOT NULL,
    not_after TIMESTAMP NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    pem TEXT NOT NULL,
    token_name TEXT,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revocation_reason TEXT,
    revoked_by TEXT
);
CREATE INDEX certificates_host_id ON certificates (host_id);
CREATE INDEX certificates_revoked_at ON certificates (revoked_at);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    target TEXT NOT NULL,
    description TEXT NOT NULL,
    reason TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TABLE settings (
    id BIGINT PRIMARY KEY,
    security_level TEXT NOT NULL,
    auto_map_host_names BOOLEAN NOT NULL,
    certificate_validity_days INTEGER NOT NULL,
    auto_reissue_minutes INTEGER NOT NULL,
    audit_retention_days INTEGER NOT NULL,
    crl_number BIGINT NOT NULL
);
INSERT INTO settings (id, security_level, auto_map_host_names, certificate_validity_days,
                      auto_reissue_minutes, audit_retention_days, crl_number)
VALUES (1, 'high', TRUE, 365, 2880, 90, 0);
