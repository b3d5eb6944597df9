#!/usr/bin/env bash
# Build the native modules with a sanitizer and run pytest against them.
#   bash tests/run_sanitized.sh address [pytest args]   # ASan + UBSan, whole suite by default
#   bash tests/run_sanitized.sh thread  tests/test_threads.py
# Needs cmake, ninja (pip install cmake ninja) and Cython in the current Python.
set -euo pipefail
san="${1:?usage: run_sanitized.sh address|thread [pytest args]}"
shift
cd "$(dirname "$0")/.."
root=$(pwd)
build="$root/build/sanitize-$san"
pkg="$build/pkgroot"
case "$san" in
    address) flags="address,undefined"; lib=libasan.so
             export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}"
             export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" ;;
    thread)  flags="thread"; lib=libtsan.so
             export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:report_signal_unsafe=0}" ;;
    *) echo "unknown sanitizer: $san" >&2; exit 2 ;;
esac
# the real interpreter, not a wrapper script: LD_PRELOAD must reach it
py=$(python3 -c 'import sys; print(sys.executable)')
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFT_SANITIZE="$flags" -DPython_EXECUTABLE="$py" >/dev/null
ninja -C "$build" >/dev/null
rm -rf "$pkg" && mkdir -p "$pkg"
# the package's Python files (subpackages included), then the sanitized modules
cp -r "$root/src/fasttransport" "$pkg/"
find "$pkg/fasttransport" \( -name '*.so' -o -name '*.c' -o -name '__pycache__' \) -prune \
    -exec rm -rf {} +
cp "$build"/*.so "$pkg/fasttransport/"
[ $# -gt 0 ] || set -- tests
# Reports go to files as well, and pytest captures only Python's sys.stderr
# (--capture=sys): a sanitizer that halts the process leaves pytest no
# chance to show what it captured, and UBSan ignores log_path when it runs
# with ASan, so its report must reach the real stderr.
logs="$build/reports"
rm -rf "$logs" && mkdir -p "$logs"
for v in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
    if [ -n "${!v:-}" ]; then export "$v=${!v}:log_path=$logs/${v%%_*}"; fi
done
rc=0
LD_PRELOAD="$(gcc -print-file-name=$lib)" PYTHONPATH="$pkg" \
    "$py" -m pytest -p no:cacheprovider --capture=sys -q "$@" || rc=$?
if compgen -G "$logs/*" >/dev/null; then
    echo "sanitizer reports ($logs):" >&2
    cat "$logs"/* >&2
    [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
