DROP INDEX certificates_unrevoked_renew_by;
DROP INDEX certificates_unrevoked_expiry;
ALTER TABLE certificates DROP COLUMN renew_by;
