DROP INDEX certificates_acme_account;
ALTER TABLE certificates DROP COLUMN replaces;
ALTER TABLE certificates DROP COLUMN acme_account_id;
ALTER TABLE certificates DROP COLUMN issued_via;
DROP TABLE acme_authorizations;
DROP TABLE acme_orders;
DROP TABLE acme_accounts;
