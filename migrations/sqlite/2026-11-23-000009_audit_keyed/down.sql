ALTER TABLE settings DROP COLUMN audit_seal;
ALTER TABLE settings DROP COLUMN audit_legacy_through;
ALTER TABLE settings DROP COLUMN audit_key_id;
ALTER TABLE audit_events DROP COLUMN last_at;
ALTER TABLE audit_events DROP COLUMN first_at;
ALTER TABLE audit_events DROP COLUMN occurrences;
ALTER TABLE audit_events DROP COLUMN chain;
