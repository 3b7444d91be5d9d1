#!/bin/sh
# Build the probe into build/{{name}}.wasm.
#
#   python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once
#   sh build.sh
#
# componentize-py is taken from $COMPONENTIZE_PY, else .venv/, else PATH.
set -eu
cd "$(dirname "$0")"

if [ -n "${COMPONENTIZE_PY:-}" ]; then
    tool=$COMPONENTIZE_PY
elif [ -x .venv/bin/componentize-py ]; then
    tool=.venv/bin/componentize-py
elif command -v componentize-py >/dev/null 2>&1; then
    tool=componentize-py
else
    echo "build.sh: componentize-py is not installed; run" >&2
    echo "  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt" >&2
    exit 1
fi

mkdir -p build
"$tool" -d wit -w probe componentize probe -o build/{{name}}.wasm
echo "built build/{{name}}.wasm"
