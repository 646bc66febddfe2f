#!/bin/sh
# A SoftHSMv2 token for the PKCS#11 tests and CI: writes DIR/softhsm2.conf (tokens kept
# in DIR/tokens, file object store), initialises a token LABEL with the user PIN and the
# security officer PIN, and prints the line that points SoftHSM at it:
#
#   eval "$(tests/softhsm-token.sh /tmp/hostca-hsm hostca 1234 5678)"
#
# Run it again with another LABEL for a second token in the same DIR. The PINs go on
# softhsm2-util's command line: for throwaway test tokens only.
set -eu
if [ "$#" -ne 4 ]; then
    echo "usage: tests/softhsm-token.sh DIR LABEL PIN SOPIN" >&2
    exit 2
fi
command -v softhsm2-util >/dev/null 2>&1 || {
    echo "tests/softhsm-token.sh: softhsm2-util is not installed (apt-get install softhsm2)" >&2
    exit 2
}
mkdir -p "$1/tokens"
dir=$(cd "$1" && pwd)
conf="$dir/softhsm2.conf"
cat >"$conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
CONF
# Its chatter goes to stderr: stdout is only the line to eval.
SOFTHSM2_CONF="$conf" softhsm2-util --init-token --free --label "$2" --pin "$3" --so-pin "$4" >&2
quoted=$(printf '%s' "$conf" | sed "s/'/'\\\\''/g")
printf "export SOFTHSM2_CONF='%s'\n" "$quoted"
