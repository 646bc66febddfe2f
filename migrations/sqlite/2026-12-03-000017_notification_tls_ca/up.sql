-- A notification target's own trust for TLS (issue 14): PEM certificates of the CA that
-- signed the SMTP server's (STARTTLS or TLS) or the https webhook receiver's certificate.
-- Empty: the public (Mozilla) roots. Set: only these are trusted, as curl's --cacert.
ALTER TABLE notification_targets ADD COLUMN tls_ca_pem TEXT NOT NULL DEFAULT '';
