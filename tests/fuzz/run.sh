#!/usr/bin/env bash
# Build the libFuzzer harness for csrc/parser.c and run it.
#
#   bash tests/fuzz/run.sh [seconds] [extra libFuzzer flags...]
#
# seconds defaults to 60 (-max_total_time). The harness is built into
# build/fuzz/ (ignored by git). The seed corpus in tests/fuzz/corpus/ is only
# read: new inputs go to a scratch directory (FUZZ_WORK, default a fresh
# temporary directory), crashes to FUZZ_WORK/artifacts/. Exits non-zero when
# the fuzzer finds a crash, a leak or a broken invariant.
#
# Reproduce one input: build/fuzz/fuzz_parser path/to/crash-file
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-60}"
shift || true
case "$seconds" in
    ''|*[!0-9]*) echo "run.sh: seconds must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

CC="${CC:-clang}"
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "run.sh: $CC not found; install clang (Debian: apt-get install clang)" >&2
    exit 2
fi

out=build/fuzz
mkdir -p "$out"
# -fsanitize=fuzzer needs clang's libFuzzer runtime (part of clang's
# compiler-rt on Debian; apt-get install clang if the link fails).
if ! "$CC" -std=c11 -Wall -Wextra -Werror -g -O1 \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Icsrc tests/fuzz/fuzz_parser.c csrc/parser.c -o "$out/fuzz_parser"; then
    echo "run.sh: build failed (a clang with libFuzzer is needed: apt-get install clang)" >&2
    exit 2
fi

work="${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ft-fuzz.XXXXXX")}"
mkdir -p "$work/corpus" "$work/artifacts"
echo "run.sh: fuzzing for ${seconds}s; new corpus in $work/corpus, crashes in $work/artifacts"

status=0
UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
"$out/fuzz_parser" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$@" \
    "$work/corpus" tests/fuzz/corpus 2>"$work/fuzz.log" || status=$?

grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' \
    "$work/fuzz.log" || true
if [ "$status" -ne 0 ]; then
    echo "run.sh: the fuzzer failed (exit $status); log: $work/fuzz.log" >&2
    grep -E 'ERROR|invariant broken|SUMMARY|Test unit written' "$work/fuzz.log" >&2 || true
    ls -l "$work/artifacts" >&2 || true
else
    echo "run.sh: no crash (exit 0); log: $work/fuzz.log"
fi
exit "$status"
