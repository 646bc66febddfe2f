ALTER TABLE hosts DROP COLUMN renewal_allowed_until;
ALTER TABLE settings DROP COLUMN renewal_interval_minutes;
DROP TABLE nonces;
