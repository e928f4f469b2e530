#!/bin/sh
# Runs one libFuzzer target briefly for `meson test`:
#   run_fuzzer.sh EXE SCRATCH CORPUS RUNS
# libFuzzer writes the inputs it finds into its first corpus directory, so
# that is SCRATCH (in the build tree, emptied first so every run starts
# from the same inputs and, with a fixed seed, is reproducible); CORPUS,
# the seeds kept in the repo, is only read.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 EXE SCRATCH CORPUS RUNS" >&2; exit 2; }
exe=$1 scratch=$2 corpus=$3 runs=$4
rm -rf "$scratch"
mkdir -p "$scratch"
# A sanitizer report must fail the test even if the caller set no options.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$exe" -runs="$runs" -seed=1 -print_final_stats=1 "$scratch" "$corpus"
