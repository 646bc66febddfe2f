-- The CRL reads every revoked, unexpired certificate: from this index alone.
CREATE INDEX certificates_revoked ON certificates (not_after, serial, revoked_at, revocation_reason)
    WHERE revoked_at IS NOT NULL;
