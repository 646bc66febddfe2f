ALTER TABLE notification_targets DROP COLUMN tls_ca_pem;
