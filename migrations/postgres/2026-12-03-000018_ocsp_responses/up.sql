-- OCSP (issue 14): responses made before they are asked for (at issue, at revocation,
-- again at half their validity), shared by every server process on the database so all
-- of them send the same bytes for one certificate. Each row carries a MAC under the data
-- directory's token key: a row edited in the database is not served, it is replaced.
-- Only good and revoked answers are stored; "unknown" is signed per request.
CREATE TABLE ocsp_responses (
    issuer_id BIGINT NOT NULL,
    serial TEXT NOT NULL,
    hash_alg TEXT NOT NULL,
    status TEXT NOT NULL,
    der BYTEA NOT NULL,
    this_update TIMESTAMP NOT NULL,
    refresh_at TIMESTAMP NOT NULL,
    next_update TIMESTAMP NOT NULL,
    mac TEXT NOT NULL,
    PRIMARY KEY (issuer_id, serial, hash_alg)
);
CREATE INDEX ocsp_responses_refresh ON ocsp_responses (refresh_at);
