# Shared by scripts/demo and scripts/test: a project virtualenv with Plinth installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtualenv in $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
install_plinth() {  # $1: extras, e.g. "[test]"
  "$VENV/bin/pip" install -q -e "$ROOT$1"
}
build_web() {  # the designer's front end, when present
  if [ -f "$ROOT/web/package.json" ]; then
    if command -v npm >/dev/null 2>&1; then
      (cd "$ROOT/web" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } \
        && npm run --silent build)
    else
      echo "npm not found: the web designer is not built (the API still runs)" >&2
    fi
  fi
}
