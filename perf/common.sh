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

# perf_stop_bench: gives the benchmark (PID in $bench) the chance to remove
# what it made itself (it does on any exit it can see) and waits for it.
perf_stop_bench() {
  if [ -n "${bench:-}" ] && kill -0 "$bench" 2>/dev/null; then
    kill -TERM "$bench" 2>/dev/null || true
    wait "$bench" 2>/dev/null || true
  fi
}

# perf_backstop NS_REGEX [PATH...]: after a benchmark killed outright
# (SIGKILL): kills, by PID, the processes inside the network namespaces
# whose names match NS_REGEX (only the benchmark's: they are named after
# its PID), deletes those namespaces, and removes the PATHs.
perf_backstop() {
  local re=$1 ns p
  shift
  for ns in $(ip netns list | awk '{print $1}' | grep -E "$re" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  [ $# = 0 ] || rm -rf -- "$@"
}
