#!/bin/sh
# Build the pages browser runtime (Lit + CEL) into src/plinth/pages/runtime-js/dist/.
# Not committed: run once before the pages/e2e tests or serving the portal. scripts/test and
# each test process's session run it; the build is skipped when nothing it reads is newer.
set -e
cd "$(dirname "$0")/../../src/plinth/pages/runtime-js"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
out=dist/plinth-runtime.js
if [ -f "$out" ] && [ -z "$(find src package.json package-lock.json node_modules/.package-lock.json -newer "$out" -print 2>/dev/null | head -1)" ]; then
  exit 0
fi
npm run build --silent
