-- The CA hierarchy: every CA certificate this installation has had (roots, issuing CAs, and
-- an upgraded installation's one root that signed hosts), its state in a CA migration and
-- where its key lives. Certificates name their issuer. An installation from before this
-- table gets its root registered here at the first start (it is in ca.pem, not in SQL),
-- and its certificates' issuer_id filled in then.
CREATE TABLE issuers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    parent_id BIGINT,
    subject TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL UNIQUE,
    key_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_location TEXT NOT NULL,
    not_before TIMESTAMP NOT NULL,
    not_after TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP,
    decommissioned_at TIMESTAMP,
    arl_der BLOB
);
-- One CA migration at a time (NetBackup's initiate, activate, complete, decommission).
CREATE TABLE ca_migrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_issuer_id BIGINT NOT NULL,
    to_issuer_id BIGINT NOT NULL,
    phase TEXT NOT NULL,
    reason TEXT NOT NULL,
    initiated_by TEXT NOT NULL,
    initiated_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    completed_at TIMESTAMP,
    forced BOOLEAN NOT NULL DEFAULT FALSE,
    decommissioned_at TIMESTAMP
);
ALTER TABLE certificates ADD COLUMN issuer_id BIGINT;
-- Hosts pending renewal: the active certificates of one issuer, by host.
CREATE INDEX certificates_issuer_active ON certificates (issuer_id, not_after, host_id) WHERE revoked_at IS NULL;
-- Hosts pending trust: when a host last fetched the trust bundle (renewal, CRL, CA).
ALTER TABLE hosts ADD COLUMN trust_seen_at TIMESTAMP;
CREATE INDEX hosts_trust_seen ON hosts (trust_seen_at);
-- Raised whenever an issuer changes, so that every server process reloads them.
ALTER TABLE settings ADD COLUMN issuers_generation BIGINT NOT NULL DEFAULT 0;
-- Each CA's CRL reads its own revoked, unexpired certificates: from this index alone.
DROP INDEX certificates_revoked;
CREATE INDEX certificates_revoked_by_issuer ON certificates (issuer_id, not_after, serial, revoked_at, revocation_reason)
    WHERE revoked_at IS NOT NULL;
