DROP INDEX certificates_revoked_by_issuer;
CREATE INDEX certificates_revoked ON certificates (not_after, serial, revoked_at, revocation_reason)
    WHERE revoked_at IS NOT NULL;
ALTER TABLE settings DROP COLUMN issuers_generation;
DROP INDEX hosts_trust_seen;
ALTER TABLE hosts DROP COLUMN trust_seen_at;
DROP INDEX certificates_issuer_active;
ALTER TABLE certificates DROP COLUMN issuer_id;
DROP TABLE ca_migrations;
DROP TABLE issuers;
