-- The name policy: DNS suffixes names must lie under to be approved automatically, and
-- names no host may ever be mapped to or certified for (lists, one entry a line).
ALTER TABLE settings ADD COLUMN allowed_domains TEXT NOT NULL DEFAULT '';
ALTER TABLE settings ADD COLUMN reserved_names TEXT NOT NULL DEFAULT '';
