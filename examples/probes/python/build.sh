#!/bin/sh
# Build every probe of this kit into a WebAssembly component.
#
#   python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once
#   sh build.sh [OUT_DIR]          # writes OUT_DIR/NAME.wasm (default: build/)
#
# componentize-py is taken from $COMPONENTIZE_PY, else .venv/, else PATH.
set -eu

kit=$(cd "$(dirname "$0")" && pwd)
out=${1:-$kit/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -n "${COMPONENTIZE_PY:-}" ]; then
    tool=$COMPONENTIZE_PY
elif [ -x "$kit/.venv/bin/componentize-py" ]; then
    tool=$kit/.venv/bin/componentize-py
elif command -v componentize-py >/dev/null 2>&1; then
    tool=componentize-py
else
    echo "build.sh: componentize-py is not installed; run" >&2
    echo "  python3 -m venv $kit/.venv && $kit/.venv/bin/pip install -r $kit/requirements.txt" >&2
    echo "(or \`cargo xtask setup\` at the top of the repository)" >&2
    exit 1
fi

cd "$kit"
# module (NAME.py) -> probe file name
for module in pg_node long_transactions; do
    case $module in
        pg_node) name=pg-node ;;
        long_transactions) name=pg-long-transactions ;;
    esac
    "$tool" -d ../../../wit -w probe componentize "$module" -o "$out/$name.wasm"
    echo "built $out/$name.wasm"
done
