-- The keyed audit chain (chain 2: HMAC-SHA256 with the data directory's audit.key over
-- length-prefixed fields); rows written before it keep chain 1 (SHA-256, 0x1f separators).
ALTER TABLE audit_events ADD COLUMN chain INTEGER NOT NULL DEFAULT 1;
-- Aggregated refusals: how many, and the first and last time within the minute.
ALTER TABLE audit_events ADD COLUMN occurrences BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN first_at TIMESTAMP;
ALTER TABLE audit_events ADD COLUMN last_at TIMESTAMP;
-- Which audit.key keys this database's chain (an identifier derived from the key, not
-- the key), the last event of the old unkeyed chain, and a MAC of both with the anchor.
ALTER TABLE settings ADD COLUMN audit_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE settings ADD COLUMN audit_legacy_through BIGINT NOT NULL DEFAULT 0;
ALTER TABLE settings ADD COLUMN audit_seal TEXT NOT NULL DEFAULT '';
