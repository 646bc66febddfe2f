#!/bin/sh
# The OpenAPI document judged by an independent validator: starts the built server
# (target/debug/hostca, run `cargo build` first) on a temporary data directory, fetches
# /api/v1/openapi.json and validates it against the OpenAPI 3.1 specification with
# openapi-spec-validator. Installs what it needs (pinned) into target/py-judges.
# Exit 0: valid; non-zero: the validator's findings on stderr.
set -eu
cd "$(dirname "$0")/.."
VALIDATOR_VERSION=0.9.0
VENV=${HOSTCA_JUDGES_VENV:-target/py-judges}
BIN=${HOSTCA_BIN:-target/debug/hostca}
[ -x "$BIN" ] || { echo "tests/openapi-validate.sh: $BIN is missing; run cargo build" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==$VALIDATOR_VERSION"

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOSTCA_ADMIN_PASSWORD=openapi-validate-admin-pw "$BIN" serve --data-dir "$work/data" \
    --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
i=0
until curl -sf "$base/ca.pem" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "tests/openapi-validate.sh: the server did not start:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -sf "$base/api/v1/openapi.json" -o "$work/openapi.json"
"$VENV/bin/openapi-spec-validator" "$work/openapi.json"
