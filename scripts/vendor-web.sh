#!/bin/bash
# Vendor the web page's graph library (Cytoscape.js) from the npm registry, at build time:
# the page (src/tether/api/webui/index.html) then works offline. Run by `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=src/tether/api/webui/vendor
VERSION=3.34.4
SHA256=081591ab735b2b6a3b31a3c60f8f3a3e2fee8c92939e0c7820ad1208571b6cd8
if [ -f "$DEST/cytoscape.min.js" ] && echo "$SHA256  $DEST/cytoscape.min.js" | sha256sum -c --quiet 2>/dev/null; then
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "cytoscape@$VERSION" >/dev/null && tar xzf "cytoscape-$VERSION.tgz" package/dist/cytoscape.min.js package/LICENSE)
echo "$SHA256  $tmp/package/dist/cytoscape.min.js" | sha256sum -c --quiet
mkdir -p "$DEST"
cp "$tmp/package/dist/cytoscape.min.js" "$DEST/"
cp "$tmp/package/LICENSE" "$DEST/cytoscape.LICENSE"
