DROP INDEX certificates_revoked;
