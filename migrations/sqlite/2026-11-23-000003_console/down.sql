DROP INDEX audit_events_actor;
DROP INDEX audit_events_category;
DROP TABLE login_attempts;
ALTER TABLE settings DROP COLUMN updated_at;
ALTER TABLE settings DROP COLUMN audit_anchor_hash;
ALTER TABLE settings DROP COLUMN audit_anchor_id;
