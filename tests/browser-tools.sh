#!/usr/bin/env bash
# The independent judges of the console's pages, pinned: axe-core (accessibility, WCAG 2.1
# AA, run inside Chromium by tests/it/browser.rs) and vnu-jar (the Nu Html Checker, run
# with java over the HTML the browser test saved). Installed from npm into
# target/browser-tools, where the browser test looks for them. Needs node/npm and java 8+.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_CORE_VERSION=4.14.1
VNU_JAR_VERSION=26.9.27
dir=target/browser-tools

command -v npm >/dev/null 2>&1 || { echo "browser-tools: npm is missing (install Node.js 18 or later)" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "browser-tools: java is missing (vnu needs Java 8 or later; Debian: default-jre-headless)" >&2; exit 1; }

have() { # package version
  [ -f "$dir/node_modules/$1/package.json" ] &&
    [ "$(node -p "require('./$dir/node_modules/$1/package.json').version")" = "$2" ]
}

if have axe-core "$AXE_CORE_VERSION" && have vnu-jar "$VNU_JAR_VERSION"; then
  echo "browser-tools: axe-core $AXE_CORE_VERSION and vnu-jar $VNU_JAR_VERSION are in $dir"
else
  mkdir -p "$dir"
  # A package.json of its own, so npm installs here and not into a parent directory.
  [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --save-exact \
    "axe-core@$AXE_CORE_VERSION" "vnu-jar@$VNU_JAR_VERSION"
fi

for f in "$dir/node_modules/axe-core/axe.min.js" "$dir/node_modules/vnu-jar/build/dist/vnu.jar"; do
  [ -f "$f" ] || { echo "browser-tools: $f is missing after the install" >&2; exit 1; }
done
java -jar "$dir/node_modules/vnu-jar/build/dist/vnu.jar" --version >/dev/null
echo "browser-tools: ready"
