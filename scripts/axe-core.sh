#!/usr/bin/env bash
# axe-core (the npm package) for central's accessibility test (tests/central/test_accessibility.py),
# which injects it into the headless chromium. Installed under .cache/axe-core (git-ignored),
# pinned to a minor version; a no-op when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="4.10"
DEST=.cache/axe-core
if [ -f "$DEST/node_modules/axe-core/axe.min.js" ] &&
    grep -q "\"version\": \"$VERSION\." "$DEST/node_modules/axe-core/package.json"; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "axe-core needs npm: apt-get install npm" >&2; exit 1; }
mkdir -p "$DEST"
npm install --silent --no-audit --no-fund --no-save --prefix "$DEST" "axe-core@~$VERSION.0" >&2
echo "axe-core $(node -p "require('./$DEST/node_modules/axe-core/package.json').version") in $DEST" >&2
