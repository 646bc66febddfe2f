#!/bin/sh
# The API judged by schemathesis against its own OpenAPI document: starts the built server
# (target/debug/hostca, run `cargo build` first) on a temporary data directory, makes an
# administrator's and a viewer's API key through the console as a person would, and runs
# `st run` twice (once per key) with bounded examples. Checks: no 5xx, response bodies,
# status codes and content types as documented. Destructive routes run too: the data
# directory is thrown away. Installs schemathesis (pinned) into target/py-judges; needs
# python3 (with venv), curl and openssl.
#
# HOSTCA_ST_MAX_EXAMPLES (default 50: both runs take about a minute on 2 cores) bounds the
# examples per operation and phase; HOSTCA_ST_SEED repeats a run.
set -eu
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION=4.32.5
VENV=${HOSTCA_JUDGES_VENV:-target/py-judges}
BIN=${HOSTCA_BIN:-target/debug/hostca}
MAX_EXAMPLES=${HOSTCA_ST_MAX_EXAMPLES:-50}
# A seed repeats a run exactly (schemathesis prints the one it used); unset, each run differs.
SEED=${HOSTCA_ST_SEED:-}
[ -x "$BIN" ] || { echo "tests/schemathesis.sh: $BIN is missing; run cargo build" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
VENV=$(cd "$VENV" && pwd)

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin_password=schemathesis-admin-password
viewer_password=schemathesis-viewer-password
HOSTCA_ADMIN_PASSWORD=$admin_password "$BIN" serve --data-dir "$work/data" \
    --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
i=0
until curl -sf "$base/ca.pem" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "tests/schemathesis.sh: the server did not start:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.2
done

# Keys are made on the console (login, CSRF token, form posts), with the standard library.
keys=$("$VENV/bin/python" - "$base" "$admin_password" "$viewer_password" <<'PY'
import http.cookiejar, re, sys, urllib.parse, urllib.request

base, admin_pw, viewer_pw = sys.argv[1:4]

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

def session():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())

def get(s, path):
    return s.open(base + path).read().decode()

def post(s, path, fields, csrf_from="/login"):
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', get(s, csrf_from)).group(1)
    data = urllib.parse.urlencode({"csrf_token": csrf, **fields}).encode()
    try:
        return s.open(base + path, data).read().decode()
    except urllib.error.HTTPError as e:
        if e.code == 303:
            return e.headers.get("Location", "")
        raise

def key(s, name):
    html = post(s, "/account/api-keys", {"name": name}, "/account/api-keys")
    return re.search(r'id="api-key-value"[^>]*>\s*([^<\s]+)', html).group(1)

admin = session()
post(admin, "/login", {"username": "admin", "password": admin_pw})
admin_key = key(admin, "schemathesis-admin")
post(admin, "/admin/users", {"username": "viewer", "role": "viewer", "password": viewer_pw}, "/admin/users")
viewer = session()
post(viewer, "/login", {"username": "viewer", "password": viewer_pw})
# A new user must choose their own password before anything else.
post(viewer, "/account/password", {"current": viewer_pw, "new": viewer_pw + "-2", "confirm": viewer_pw + "-2"}, "/account/password")
viewer_key = key(viewer, "schemathesis-viewer")
print(admin_key, viewer_key)
PY
)
admin_key=${keys% *}
viewer_key=${keys#* }

# Things for the administrator's run to find (a host with a mapping, a token, an enrolled
# host's certificate), named in a config file: otherwise every {host}, {name} and {serial}
# it makes up is a 404 and the routes behind them are never reached.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/host.key" \
    -subj /CN=enrolled.example.com -out "$work/host.csr" 2>/dev/null
"$VENV/bin/python" - "$base" "$admin_key" "$work" <<'PY'
import json, sys, urllib.request

base, key, work = sys.argv[1:4]

def call(method, path, body=None, auth=True):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req) as r:
        return json.load(r)

call("PUT", "/api/v1/settings", {"allowed_domains": ["example.com"], "reason": "schemathesis"})
call("POST", "/api/v1/hosts", {"name": "st.example.com"})
call("POST", "/api/v1/hosts/st.example.com/mappings", {"name": "alias.example.com"})
call("POST", "/api/v1/tokens", {"name": "st-token", "max_uses": 5, "valid_for": "1d"})
value = call("POST", "/api/v1/tokens/st-token/show")["value"]
csr = open(work + "/host.csr").read()
cert = call("POST", "/api/v1/certificates",
            {"hostname": "enrolled.example.com", "csr": csr, "token": value}, auth=False)
with open(work + "/schemathesis.toml", "w") as f:
    f.write(f"""[parameters]
"path.host" = "st.example.com"
"path.serial" = "{cert['serial']}"

[[operations]]
include-path-regex = "^/api/v1/tokens/"
parameters = {{ "path.name" = "st-token" }}

[[operations]]
include-path-regex = "/mappings/"
parameters = {{ "path.name" = "alias.example.com" }}
""")
PY

status=0
for who in administrator viewer; do
    # The administrator works on the things made above; the viewer's run makes up its
    # own path values, so between them both real and invented resources are tried.
    if [ "$who" = administrator ]; then
        key=$admin_key
        config="--config-file=$work/schemathesis.toml"
    else
        key=$viewer_key
        config="--config-file=$work/empty.toml"
        : >"$work/empty.toml"
    fi
    echo "== schemathesis as the $who"
    # From the temporary directory: schemathesis keeps a cache (.schemathesis/) where it runs.
    # POST /ocsp takes a DER body schemathesis cannot generate (no serializer for
    # application/ocsp-request); openssl ocsp judges it in tests/it/ocsp.rs instead.
    (cd "$work" && "$VENV/bin/st" "$config" run "$base/api/v1/openapi.json" --url "$base" \
        --header "Authorization: Bearer $key" \
        --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
        --max-examples "$MAX_EXAMPLES" \
        --phases examples,coverage,fuzzing \
        --workers 2 \
        ${SEED:+--seed "$SEED"} \
        --exclude-path /ocsp \
        --no-color) || status=1
done
if [ "$status" != 0 ]; then
    echo "tests/schemathesis.sh: failures above; the server's log:" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$status"
