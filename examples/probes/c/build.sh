#!/bin/sh
# Build every probe of this kit into a WebAssembly component.
#
#   sh build.sh [OUT_DIR]        # writes OUT_DIR/NAME.wasm (default: build/)
#
# Tools (Debian packages, and two from crates.io; `cargo xtask setup` at the
# top of the repository installs them all):
#   clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32   (apt)
#   wit-bindgen (wit-bindgen-cli 0.61.1): C bindings from the WIT
#       $WIT_BINDGEN, else ../../../target/tools/bin/wit-bindgen, else PATH
#   wasm-component-ld: links the objects and wraps the module into a
#       component (with the WASI preview 1 adapter); it ships with Rust's
#       wasm32-wasip2 support: $WASM_COMPONENT_LD, else the one in
#       `rustc --print sysroot`, else PATH
set -eu

kit=$(cd "$(dirname "$0")" && pwd)
out=${1:-$kit/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)

die() {
    echo "build.sh: $*" >&2
    exit 1
}

cc=${CC:-clang-19}
command -v "$cc" >/dev/null 2>&1 || die "$cc is not installed (apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)"
wasm_ld=${WASM_LD:-wasm-ld-19}
command -v "$wasm_ld" >/dev/null 2>&1 || die "$wasm_ld is not installed (apt-get install lld-19)"
builtins=$("$cc" --target=wasm32-wasi -print-libgcc-file-name)
[ -f "$builtins" ] || die "$builtins is missing (apt-get install libclang-rt-19-dev-wasm32)"
sysroot=${WASI_SYSROOT:-/usr}
[ -f "$sysroot/lib/wasm32-wasi/libc.a" ] || die "wasi-libc is not installed (apt-get install wasi-libc)"

if [ -n "${WIT_BINDGEN:-}" ]; then
    wit_bindgen=$WIT_BINDGEN
elif [ -x "$kit/../../../target/tools/bin/wit-bindgen" ]; then
    wit_bindgen=$kit/../../../target/tools/bin/wit-bindgen
elif command -v wit-bindgen >/dev/null 2>&1; then
    wit_bindgen=wit-bindgen
else
    die "wit-bindgen is not installed (cargo install wit-bindgen-cli --version 0.61.1 --locked)"
fi

if [ -n "${WASM_COMPONENT_LD:-}" ]; then
    component_ld=$WASM_COMPONENT_LD
else
    host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
    component_ld=$(rustc --print sysroot 2>/dev/null)/lib/rustlib/$host/bin/wasm-component-ld
    [ -x "$component_ld" ] || component_ld=$(command -v wasm-component-ld) ||
        die "wasm-component-ld not found (rustup target add wasm32-wasip2, or cargo install wasm-component-ld)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$wit_bindgen" c "$kit/../../../wit" --world probe --out-dir "$work" >/dev/null
"$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -Werror -c "$work/probe.c" -o "$work/probe.o"

for source in memory_pressure; do
    name=$(echo "$source" | tr _ -)
    "$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -Werror -I "$work" \
        -c "$kit/$source.c" -o "$work/$source.o"
    # A reactor (no main): the agent calls the exports.
    "$component_ld" --wasm-ld-path "$(command -v "$wasm_ld")" --wasi-adapter reactor \
        -m wasm32 -L "$sysroot/lib/wasm32-wasi" "$sysroot/lib/wasm32-wasi/crt1-reactor.o" \
        --entry _initialize "$work/$source.o" "$work/probe.o" "$work/probe_component_type.o" \
        -lc "$builtins" --strip-debug -o "$out/$name.wasm"
    echo "built $out/$name.wasm"
done
