CREATE INDEX tokens_lower_name ON tokens (lower(name), name);
