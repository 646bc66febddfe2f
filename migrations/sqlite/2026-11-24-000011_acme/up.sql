-- ACME (RFC 8555): an account is a host's ACME client key, bound by a hostca token (its
-- External Account Binding) or, at security level medium, by nothing but its challenges.
CREATE TABLE acme_accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL UNIQUE,
    thumbprint TEXT NOT NULL UNIQUE,
    jwk TEXT NOT NULL,
    status TEXT NOT NULL,
    binding TEXT NOT NULL,
    token_name TEXT,
    host_id TEXT,
    contact TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    last_order_at TIMESTAMP
);
CREATE INDEX acme_accounts_host ON acme_accounts (host_id);
CREATE TABLE acme_orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    status TEXT NOT NULL,
    replaces TEXT,
    certificate_serial TEXT,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, created_at);
-- One authorization per identifier of an order, with its challenge on the same row: a name
-- needs no challenge (the token is the proof), or http-01 or tls-alpn-01 (one token; the
-- type the client answered is recorded).
CREATE TABLE acme_authorizations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    authz_id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    identifier TEXT NOT NULL,
    status TEXT NOT NULL,
    challenge_token TEXT,
    challenge_status TEXT,
    challenge_type TEXT,
    validated_at TIMESTAMP,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX acme_authorizations_order ON acme_authorizations (order_id);
-- How each certificate came to be, and which one it replaced (ACME "replaces", renewal).
ALTER TABLE certificates ADD COLUMN issued_via TEXT NOT NULL DEFAULT 'enrollment';
ALTER TABLE certificates ADD COLUMN acme_account_id TEXT;
ALTER TABLE certificates ADD COLUMN replaces TEXT;
UPDATE certificates SET issued_via = 'server' WHERE host_id = '00000000-0000-0000-0000-000000000000';
CREATE INDEX certificates_acme_account ON certificates (acme_account_id);
