#!/bin/sh
# Builds moongate in release mode and runs the AEAD burst benchmark, saving
# the Markdown table (with machine, commit and date) and a JSON copy under
# docs/perf-results/.
#
# Usage: perf/run-aead.sh [--build-dir DIR] [bench_aead options...]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Options after it go to bench_aead (e.g. --reps 21 --cpu 1 --arch avx2).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-aead.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
if [ "${1:-}" = "--build-dir" ]; then
  [ $# -ge 2 ] || { echo "run-aead.sh: --build-dir needs a value" >&2; exit 2; }
  build=$2
  shift 2
fi
case $build in
  /*) ;;
  *) build=$root/$build ;;
esac

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" --buildtype=release
else
  # An existing directory must still be a release build, or the numbers lie.
  buildtype=$(meson introspect --buildoptions "$build" |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"))')
  [ "$buildtype" = release ] || meson configure "$build" --buildtype=release
fi
ninja -C "$build" perf/bench_aead

date_utc=$(date -u +%Y-%m-%d)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
outdir=$root/docs/perf-results
mkdir -p "$outdir"
base=$outdir/aead-$date_utc
[ -e "$base.md" ] && base=$outdir/aead-$(date -u +%Y-%m-%d-%H%M%S)

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
if [ "$commit" != uncommitted ] && [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
cores=$(nproc)

table=$("$build/perf/bench_aead" --json "$base.json" "$@")
{
  echo "$table"
  echo
  echo "- Machine: $cpu, $cores CPUs ($(uname -r))"
  echo "- Commit: $commit"
  echo "- Date: $stamp"
  echo "- Command: $cmdline"
  echo "- Compiler: $(sed -n 's/^C++ compiler for the host machine: //p' "$build/meson-logs/meson-log.txt" | head -n 1)"
  echo "- Build: $(meson introspect --buildoptions "$build" |
    python3 -c 'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print("buildtype=%s, b_ndebug=%s" % (o["buildtype"], o["b_ndebug"]))')"
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
