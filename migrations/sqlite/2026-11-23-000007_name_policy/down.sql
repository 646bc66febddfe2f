ALTER TABLE settings DROP COLUMN reserved_names;
ALTER TABLE settings DROP COLUMN allowed_domains;
