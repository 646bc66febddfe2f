-- When half of the server's suggested renewal window (the last third of the lifetime) is
-- over: a host still on the certificate then has missed its window (the overview page).
ALTER TABLE certificates ADD COLUMN renew_by TIMESTAMP;
UPDATE certificates SET renew_by = strftime('%Y-%m-%d %H:%M:%S',
    julianday(not_before) + (julianday(not_after) - julianday(not_before)) * 5.0 / 6.0);
-- The overview's and /metrics' counts of unrevoked certificates by expiry and renewal time.
CREATE INDEX certificates_unrevoked_expiry ON certificates (not_after, host_id) WHERE revoked_at IS NULL;
CREATE INDEX certificates_unrevoked_renew_by ON certificates (renew_by) WHERE revoked_at IS NULL;
