#!/usr/bin/env bash
# hostca's ACME server judged by two real clients nobody here wrote: certbot (PyPI, pinned,
# installed into target/acme-judges) and lego (Debian's package). Starts the built server
# (target/debug/hostca; run `cargo build` first) over HTTPS with its own CA on a temporary
# data directory, makes tokens with the admin API, and checks, with openssl as the judge
# of the certificates and the CRL:
#   1. a token of max uses 2: certbot and lego each register with it (EAB) and get a
#      certificate; a third registration is refused (the token is used up);
#   2. openssl verifies each certificate against /ca.pem;
#   3. `certbot renew --force-renewal` and `lego renew` get new certificates and the old
#      ones are superseded;
#   4. `certbot revoke --reason keycompromise` and `lego revoke --reason 1` put the serials
#      in the CRL with that reason;
#   5. a reissue token used as EAB gets a certificate with the host's old host ID;
#   6. an account asking for another host's name gets no certificate.
# Then the same on PostgreSQL (HOSTCA_ACME_PG_URL, default the machine's), with two server
# processes on one database: certbot talks to one, lego to the other, and the token's
# uses hold across them. HOSTCA_ACME_PG=0 skips PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
CERTBOT_VERSION=5.8.0
BIN=${HOSTCA_BIN:-target/debug/hostca}
JUDGES=target/acme-judges
PG_URL=${HOSTCA_ACME_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
[ -x "$BIN" ] || { echo "tests/acme-clients.sh: $BIN is missing; run cargo build" >&2; exit 2; }

mkdir -p "$JUDGES"
[ -x "$JUDGES/venv/bin/python" ] || python3 -m venv "$JUDGES/venv"
"$JUDGES/venv/bin/pip" install -q --disable-pip-version-check "certbot==$CERTBOT_VERSION"
CERTBOT=$(cd "$JUDGES/venv/bin" && pwd)/certbot
PY=$(cd "$JUDGES/venv/bin" && pwd)/python
if ! command -v lego >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q lego >/dev/null
fi
echo "judges: $("$CERTBOT" --version 2>&1), lego $(dpkg-query -W -f='${Version}' lego 2>/dev/null || echo '?')"

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${pg_db:-}" ]; then
        psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    [ -n "${HOSTCA_ACME_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok $(date +%T): $*"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ADMIN_PASSWORD=acme-judges-admin-password

# start_server NAME DATA PORT [DATABASE_URL]: hostca over HTTPS as https://localhost:PORT.
start_server() {
    local name=$1 data=$2 port=$3 db=${4:-}
    local args=(serve --data-dir "$data" --listen "127.0.0.1:$port" --tls --tls-name localhost)
    [ -n "$db" ] && args+=(--database-url "$db")
    HOSTCA_ADMIN_PASSWORD=$ADMIN_PASSWORD RUST_LOG=warn "$BIN" "${args[@]}" >"$work/$name.log" 2>&1 &
    pids+=($!)
    local i=0
    until curl -skf "https://127.0.0.1:$port/ca.pem" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt 150 ]; then
            cat "$work/$name.log" >&2
            fail "the server $name did not start"
        fi
        sleep 0.2
    done
}

# An administrator's API key, made on the console as a person would.
api_key() {
    "$PY" - "$1" "$ADMIN_PASSWORD" "$2" <<'PY'
import http.cookiejar, re, ssl, sys, urllib.parse, urllib.request
base, pw, ca = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
s = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                urllib.request.HTTPSHandler(context=ctx), NoRedirect())
def post(path, fields, csrf_from):
    html = s.open(base + csrf_from).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    data = urllib.parse.urlencode({"csrf_token": csrf, **fields}).encode()
    try:
        return s.open(base + path, data).read().decode()
    except urllib.error.HTTPError as e:
        if e.code == 303:
            return ""
        raise
post("/login", {"username": "admin", "password": pw}, "/login")
html = post("/account/api-keys", {"name": "acme-judges"}, "/account/api-keys")
print(re.search(r'id="api-key-value"[^>]*>\s*([^<\s]+)', html).group(1))
PY
}

# api METHOD PATH [JSON]: the admin API's answer (JSON), or a failure.
api() {
    "$PY" - "$base" "$key" "$ca" "$1" "$2" "${3:-}" <<'PY'
import json, ssl, sys, urllib.request
base, key, ca, method, path, body = sys.argv[1:7]
req = urllib.request.Request(base + path, method=method, data=body.encode() if body else None)
req.add_header("Content-Type", "application/json")
req.add_header("Authorization", "Bearer " + key)
with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)) as r:
    print(r.read().decode())
PY
}
field() { "$PY" -c 'import json,sys; v=json.load(sys.stdin); print(eval("v"+sys.argv[1]))' "$1"; }

# token NAME MAX_USES: "KID HMAC" of a new authorization token.
token() {
    api POST /api/v1/tokens "{\"name\": \"$1\", \"max_uses\": $2, \"valid_for\": \"1d\"}" >/dev/null
    api POST "/api/v1/tokens/$1/show" | field '["eab_kid"]+" "+v["eab_hmac_key"]'
}

# crl_lists BASE SERIAL REASON: the CRL served at BASE verifies and lists SERIAL with REASON.
crl_lists() {
    curl -sf --cacert "$ca" "$1/crl.pem" >"$w/crl.pem"
    openssl crl -in "$w/crl.pem" -CAfile "$ca" -noout 2>/dev/null || fail "openssl does not verify the CRL of $1"
    openssl crl -in "$w/crl.pem" -noout -text >"$w/crl.txt"
    grep -A4 "Serial Number: $2" "$w/crl.txt" | grep -q "$3"
}

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr a-f A-F; }
host_id_of() { openssl x509 -in "$1" -noout -ext subjectAltName | grep -o 'urn:uuid:[0-9a-f-]*'; }
status_of() { api GET "/api/v1/certificates/$1" | field '["status"]'; }

certbot_() {
    # $1: the client's own directory (its account lives there), then certbot's arguments.
    local dir=$1; shift
    REQUESTS_CA_BUNDLE=$ca "$CERTBOT" --non-interactive --agree-tos -m ops@example.com \
        --config-dir "$dir/config" --work-dir "$dir/work" --logs-dir "$dir/logs" \
        --server "$directory" "$@"
}
lego_() {
    local dir=$1; shift
    LEGO_CA_CERTIFICATES=$ca lego --accept-tos --email ops@example.com --path "$dir" \
        --server "$directory" "$@"
}

# flows LABEL CERTBOT_BASE LEGO_BASE: the six checks, certbot against one server and
# lego against another (the same one, or a second process on the same database).
flows() {
    local label=$1 certbot_base=$2 lego_base=$3
    local w="$work/$label"
    mkdir -p "$w"
    local http_port
    http_port=$(free_port)
    read -r kid hmac <<<"$(token "two-$label" 2)"

    # 1. Two registrations with a token of two uses, each with its certificate.
    directory="$certbot_base/acme/directory"
    certbot_ "$w/certbot" certonly --standalone --http-01-port "$http_port" \
        --eab-kid "$kid" --eab-hmac-key "$hmac" -d "a-$label.acme.test" --cert-name a \
        >"$w/certbot-1.log" 2>&1 || { cat "$w/certbot-1.log"; fail "$label: certbot could not register and get a certificate"; }
    local a_cert="$w/certbot/config/live/a/cert.pem"
    directory="$lego_base/acme/directory"
    lego_ "$w/lego" --eab --kid "$kid" --hmac "$hmac" --domains "b-$label.acme.test" \
        --http --http.port ":$http_port" run >"$w/lego-1.log" 2>&1 \
        || { cat "$w/lego-1.log"; fail "$label: lego could not register and get a certificate"; }
    local b_cert="$w/lego/certificates/b-$label.acme.test.crt"
    ok "$label: certbot and lego registered with one token of two uses and got certificates"
    directory="$certbot_base/acme/directory"
    if certbot_ "$w/certbot-3" register --eab-kid "$kid" --eab-hmac-key "$hmac" >"$w/certbot-3.log" 2>&1; then
        fail "$label: a third registration with a token of two uses was accepted"
    fi
    grep -q "used up" "$w/certbot-3.log" || { cat "$w/certbot-3.log"; fail "$label: the third registration's refusal does not say the token is used up"; }
    ok "$label: a third registration is refused: $(grep -o 'the token [^ ]* is used up[^"]*' "$w/certbot-3.log" | head -1)"

    # 2. openssl is the judge of the certificates.
    for c in "$a_cert" "$b_cert"; do
        openssl verify -CAfile "$ca" "$c" >/dev/null || fail "$label: openssl does not verify $c"
    done
    openssl x509 -in "$a_cert" -noout -ext subjectAltName | grep -q "DNS:a-$label.acme.test" \
        || fail "$label: certbot's certificate does not name a-$label.acme.test"
    ok "$label: openssl verifies both certificates against /ca.pem"

    # 3. Renewals supersede.
    local a_old b_old a_new b_new a_host
    a_old=$(serial_of "$a_cert"); b_old=$(serial_of "$b_cert"); a_host=$(host_id_of "$a_cert")
    certbot_ "$w/certbot" renew --force-renewal --no-random-sleep-on-renew --standalone --http-01-port "$http_port" \
        >"$w/certbot-renew.log" 2>&1 || { cat "$w/certbot-renew.log"; fail "$label: certbot renew failed"; }
    directory="$lego_base/acme/directory"
    # lego wants the EAB flags whenever the server requires EAB, even for its account.
    lego_ "$w/lego" --eab --kid "$kid" --hmac "$hmac" --domains "b-$label.acme.test" \
        --http --http.port ":$http_port" renew --days 9999 --no-random-sleep >"$w/lego-renew.log" 2>&1 || { cat "$w/lego-renew.log"; fail "$label: lego renew failed"; }
    a_new=$(serial_of "$a_cert"); b_new=$(serial_of "$b_cert")
    [ "$a_new" != "$a_old" ] && [ "$b_new" != "$b_old" ] || fail "$label: renewal did not give new certificates"
    [ "$(status_of "$a_old")" = superseded ] && [ "$(status_of "$b_old")" = superseded ] \
        || { api GET "/api/v1/certificates/$a_old"; api GET "/api/v1/certificates/$b_old"; cat "$w/certbot-renew.log" "$w/lego-renew.log"; fail "$label: the renewed certificates are not superseded"; }
    [ "$(host_id_of "$a_cert")" = "$a_host" ] || fail "$label: renewal changed the host ID"
    ok "$label: certbot renew --force-renewal and lego renew replaced and superseded the certificates"

    # 4. Revocation with a reason, in the CRL.
    directory="$certbot_base/acme/directory"
    certbot_ "$w/certbot" revoke --cert-path "$a_cert" --reason keycompromise --no-delete-after-revoke \
        >"$w/certbot-revoke.log" 2>&1 || { cat "$w/certbot-revoke.log"; fail "$label: certbot revoke failed"; }
    directory="$lego_base/acme/directory"
    lego_ "$w/lego" --eab --kid "$kid" --hmac "$hmac" --domains "b-$label.acme.test" revoke --keep --reason 1 \
        >"$w/lego-revoke.log" 2>&1 || { cat "$w/lego-revoke.log"; fail "$label: lego revoke failed"; }
    # Each process serves the CRL it signed; another process's revocation reaches it within
    # 30 seconds (it adopts the newer CRL number from the database).
    for s in "$a_new" "$b_new"; do
        local i=0
        until crl_lists "$certbot_base" "$s" "Key Compromise"; do
            i=$((i + 1))
            [ "$i" -le 40 ] || { cat "$w/crl.txt"; fail "$label: $s is not in the CRL as Key Compromise"; }
            sleep 1
        done
    done
    ok "$label: certbot and lego revocations are in the CRL with reason Key Compromise"

    # 5. A reissue token as EAB: the host's own host ID again.
    api POST /api/v1/tokens/reissue "{\"host\": \"a-$label.acme.test\", \"name\": \"re-$label\", \"valid_for\": \"1d\"}" >/dev/null
    read -r rkid rhmac <<<"$(api POST "/api/v1/tokens/re-$label/show" | field '["eab_kid"]+" "+v["eab_hmac_key"]')"
    directory="$certbot_base/acme/directory"
    certbot_ "$w/certbot-re" certonly --standalone --http-01-port "$http_port" \
        --eab-kid "$rkid" --eab-hmac-key "$rhmac" -d "a-$label.acme.test" --cert-name a \
        >"$w/certbot-re.log" 2>&1 || { cat "$w/certbot-re.log"; fail "$label: certbot with a reissue token failed"; }
    [ "$(host_id_of "$w/certbot-re/config/live/a/cert.pem")" = "$a_host" ] \
        || fail "$label: the reissued certificate has another host ID"
    ok "$label: a reissue token as EAB got a certificate with the same host ID ($a_host)"

    # 6. Host B's account asks for host A's name.
    directory="$lego_base/acme/directory"
    if lego_ "$w/lego" --eab --kid "$kid" --hmac "$hmac" --domains "a-$label.acme.test" \
        --http --http.port ":$http_port" run \
        >"$w/lego-steal.log" 2>&1; then
        fail "$label: host B's account got a certificate for host A's name"
    fi
    grep -q "rejectedIdentifier\|another host" "$w/lego-steal.log" \
        || { cat "$w/lego-steal.log"; fail "$label: the refusal does not say the name is another host's"; }
    ok "$label: an account asking for another host's name gets no certificate"
}

# SQLite, one server.
port=$(free_port)
start_server sqlite "$work/sqlite" "$port"
base="https://localhost:$port"
ca="$work/sqlite-ca.pem"
curl -sk "$base/ca.pem" >"$ca"
key=$(api_key "$base" "$ca")
flows sqlite "$base" "$base"

# PostgreSQL, two server processes on one database.
if [ "${HOSTCA_ACME_PG:-1}" != 0 ]; then
    pg_db="hostca_acme_$$"
    psql -q "$PG_URL" -c "CREATE DATABASE $pg_db" >/dev/null
    db_url="${PG_URL%/*}/$pg_db"
    pa=$(free_port); pb=$(free_port)
    start_server pg-a "$work/pg" "$pa" "$db_url"
    start_server pg-b "$work/pg" "$pb" "$db_url"
    base="https://localhost:$pa"
    ca="$work/pg-ca.pem"
    curl -sk "$base/ca.pem" >"$ca"
    key=$(api_key "$base" "$ca")
    flows postgres "https://localhost:$pa" "https://localhost:$pb"
fi
echo "tests/acme-clients.sh: every check passed"
