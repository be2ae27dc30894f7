#!/bin/sh
# Install the stock yjs + y-websocket client the protocol test drives (pinned by the lockfile).
set -e
cd "$(dirname "$0")/node"
[ -d node_modules/y-websocket ] || npm ci --no-audit --no-fund --loglevel=error
