#!/bin/sh
# Build the pages browser runtime (Lit + CEL) into src/plinth/pages/runtime-js/dist/.
# Not committed: run once before the pages/e2e tests or serving the portal.
set -e
cd "$(dirname "$0")/../../src/plinth/pages/runtime-js"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
