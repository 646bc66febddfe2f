#!/bin/sh
# The certificate profile judged by pkilint (https://github.com/digicert/pkilint): the root
# CA, the issuing CA (and a name-constrained one made by a CA migration), the root's ARL, a
# leaf of each accepted key type (P-256, P-384, Ed25519, RSA-2048, RSA-2048 signed with
# PSS), a leaf whose name is too long for a CN, the server's TLS certificate,
# and CRLs (empty, and with every revocation reason). Fails on any ERROR or FATAL finding
# but one known false positive, filtered in tests/profile.rs (`pkilint`): the `urn:uuid:`
# host ID URI in the subjectAltName.
#
# Installs nothing: CI runs `pip install pkilint==0.13.3` first. Runs on SQLite, and on
# PostgreSQL too when HOSTCA_TEST_DATABASE_URL is set.
set -eu
cd "$(dirname "$0")/.."
for tool in lint_pkix_cert lint_crl openssl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "tests/pkilint.sh: $tool is not installed (pip install pkilint==0.13.3)" >&2
        exit 2
    }
done
HOSTCA_PKILINT=1 exec cargo test --test it profile:: -- "$@"
