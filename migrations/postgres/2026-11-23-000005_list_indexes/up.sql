CREATE INDEX tokens_lower_name ON tokens (lower(name), name);
CREATE INDEX certificates_not_after ON certificates (not_after);
