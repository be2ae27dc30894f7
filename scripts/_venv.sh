# Shared by scripts/demo, scripts/test and scripts/upgrade-deps: a virtualenv with Plinth
# installed from the lock, and the front ends built. Each step is skipped when what it would
# make is already there for the same inputs (by content hash), so a second start is quick.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${PLINTH_VENV:-$ROOT/.venv}"
# The exact versions CI tested (written by scripts/lock). PLINTH_CONSTRAINTS= (empty) installs
# the newest versions pyproject.toml's bounds allow instead (scripts/upgrade-deps does).
CONSTRAINTS="${PLINTH_CONSTRAINTS-$ROOT/constraints.txt}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtualenv in $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
if [ -n "$CONSTRAINTS" ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "note: constraints.txt was resolved for Python 3.11; this is $("$VENV/bin/python" -V)" >&2
fi

tree_hash() {  # the SHA-256 of the named files and of every file under the named folders
  (cd "$ROOT" && find "$@" \( -name node_modules -o -name dist \) -prune -o -type f -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
}

install_plinth() {  # $1: extras, e.g. "[test]"; nothing to do when that set is installed already
  local want stamp="$VENV/.plinth-installed"
  if [ -n "$CONSTRAINTS" ] && [ ! -f "$CONSTRAINTS" ]; then
    echo "$CONSTRAINTS is missing: run scripts/lock" >&2
    return 1
  fi
  want="$(cat "$ROOT/pyproject.toml" ${CONSTRAINTS:+"$CONSTRAINTS"} | sha256sum | cut -c1-64)"
  # The stamp names the inputs of the last install: pyproject.toml, the lock, the extras.
  if [ -f "$stamp" ] && { grep -Fqx "$want $1" "$stamp" || { [ -z "$1" ] && grep -q "^$want " "$stamp"; }; }; then
    return
  fi
  echo "Installing Plinth$1 into $VENV${CONSTRAINTS:+ (versions from constraints.txt)}"
  rm -f "$stamp"
  "$VENV/bin/pip" install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e "$ROOT$1"
  echo "$want $1" >"$stamp"
}

build_js() {  # $1: a node project under ROOT; $2: what its build makes (relative to it)
  local dir="$ROOT/$1" want
  if [ ! -f "$dir/package.json" ]; then return; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: $1 is not built (the API still runs)" >&2
    return
  fi
  # Dependencies again only when the lockfile changed; the build only when a source did.
  want="$(sha256sum <"$dir/package-lock.json" | cut -c1-64)"
  if [ "$(cat "$dir/node_modules/.plinth-lock" 2>/dev/null)" != "$want" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$dir/node_modules/.plinth-lock"
  fi
  want="$(tree_hash "$1")"
  if [ "$(cat "$dir/$2/.plinth-build" 2>/dev/null)" != "$want" ]; then
    echo "Building $1"
    (cd "$dir" && npm run --silent build)
    echo "$want" >"$dir/$2/.plinth-build"
  fi
}

build_front_ends() {  # the web IDE (served at /) and the portal's pages runtime (/a/…)
  build_js web dist
  build_js src/plinth/pages/runtime-js dist
}
