#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install the given
# extras of this package into it. Reinstalls only when setup.py changes.
# Usage: scripts/venv.sh EXTRAS   (e.g. "demo" or "dev")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: gaitmil-edge needs Python 3.10 or newer; found $("$python" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        echo "error: '$python -m venv' failed; on Debian/Ubuntu install python3-venv:" >&2
        echo "  sudo apt-get install -y python3-venv" >&2
        exit 1
    fi
    "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
stamp="$venv/.installed-$extras"
digest=$(cat setup.py pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "installing gaitmil-edge[$extras] into $venv ..." >&2
    "$venv/bin/python" -m pip install -q -e ".[$extras]"
    echo "$digest" > "$stamp"
fi
