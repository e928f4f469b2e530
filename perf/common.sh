# Shared by the perf/run-*.sh scripts (sourced, POSIX sh): a release build
# to measure, and where and with which facts a result is recorded.

# perf_release_build DIR TARGET [meson setup options...]
# Configures DIR (relative to the repository) as a release build if needed
# and builds TARGET; sets $build to the absolute directory.
perf_release_build() {
  build=$1
  target=$2
  shift 2
  case $build in
    /*) ;;
    *) build=$root/$build ;;
  esac
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release "$@"
  else
    # An existing directory must still be a release build, or the numbers lie.
    buildtype=$(meson introspect --buildoptions "$build" |
      python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"))')
    [ "$buildtype" = release ] || meson configure "$build" --buildtype=release
  fi
  ninja -C "$build" "$target"
}

# perf_result_facts NAME
# Sets $base (docs/perf-results/NAME-<date>, never overwriting a result),
# $stamp, $commit (marked when the tree has uncommitted changes), $cpu, $cores.
perf_result_facts() {
  outdir=$root/docs/perf-results
  mkdir -p "$outdir"
  base=$outdir/$1-$(date -u +%Y-%m-%d)
  [ -e "$base.md" ] && base=$outdir/$1-$(date -u +%Y-%m-%d-%H%M%S)
  stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  if [ "$commit" != uncommitted ] && [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then
    commit="$commit (with uncommitted changes)"
  fi
  cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
  cores=$(nproc)
}

# perf_result_footer [MACHINE_NOTE]
# Prints the facts every result ends with: machine (plus an optional note,
# e.g. the load seen), commit, date, command, compiler, build options.
# Needs perf_result_facts, $cmdline and $build.
perf_result_footer() {
  echo "- Machine: $cpu, $cores CPUs ($(uname -r))${1:+; $1}"
  echo "- Commit: $commit"
  echo "- Date: $stamp"
  echo "- Command: $cmdline"
  echo "- Compiler: $(sed -n 's/^C++ compiler for the host machine: //p' "$build/meson-logs/meson-log.txt" | head -n 1)"
  echo "- Build: $(meson introspect --buildoptions "$build" |
    python3 -c 'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print("buildtype=%s, b_ndebug=%s" % (o["buildtype"], o["b_ndebug"]))')"
}
