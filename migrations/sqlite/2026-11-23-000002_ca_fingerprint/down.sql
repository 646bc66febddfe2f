ALTER TABLE settings DROP COLUMN ca_fingerprint;
