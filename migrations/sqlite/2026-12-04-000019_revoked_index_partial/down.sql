DROP INDEX certificates_revoked_at;
CREATE INDEX certificates_revoked_at ON certificates (revoked_at);
