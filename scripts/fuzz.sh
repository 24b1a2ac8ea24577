#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted input (fuzz/fuzz_targets/*.rs) for a
# bounded time each, and fails if any target crashes or breaks a property.
#
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh token client_frame
#
# Runs with no manual steps on the machine's stable toolchain (no nightly can
# be installed here):
# - cargo-fuzz is installed once into the project-local .tools/ (pinned below).
# - Its coverage instrumentation (`-Cpasses=sancov-module`,
#   `-Cllvm-args=-sanitizer-coverage-*`) and `--cfg fuzzing` are stable rustc
#   flags, and libfuzzer-sys builds libFuzzer from source with the system C++
#   compiler. Only a sanitizer needs a nightly flag (`-Zsanitizer=…`), so the
#   default is `--sanitizer none`: the library and targets are safe Rust, where
#   what fuzzing finds is a panic, a failed property or an overflow (these
#   builds keep debug assertions and overflow checks), none of which needs
#   ASan. FUZZ_SANITIZER=address opts in: the script then sets
#   RUSTC_BOOTSTRAP=1 so stable rustc accepts `-Zsanitizer`, and links the ASan
#   runtime the stable toolchain ships (a full rebuild, and slower runs).
# - The build goes to fuzz/target (fuzz/ is its own workspace), so it neither
#   waits for nor invalidates builds in target/. fuzz/Cargo.toml optimises only
#   the crates on the parsing path, to keep a cold build short.
#
# Corpora: the seeds in fuzz/corpus/<target>/ and the crash inputs kept in
# fuzz/regressions/<target>/ are read-only inputs, run first on every run (so a
# kept crash fails at once); what the fuzzer learns goes to
# fuzz/target/corpus/<target>/, kept between local runs and never committed.
# A crash leaves its input in fuzz/artifacts/<target>/; this script prints
# its path and the command that replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
tools="$root/.tools"

if [[ ! -x "$tools/bin/cargo-fuzz" ]]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools/" >&2
  cargo install --locked --root "$tools" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export PATH="$tools/bin:$PATH"
if [[ "$sanitizer" != none ]]; then
  export RUSTC_BOOTSTRAP=1
fi

build=(--fuzz-dir fuzz --sanitizer "$sanitizer")
if (($# > 0)); then targets=("$@"); else mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz); fi

start=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s" >&2

failed=()
for target in "${targets[@]}"; do
  work="fuzz/target/corpus/$target"
  mkdir -p "$work" "fuzz/artifacts/$target"
  corpora=("$work" "fuzz/corpus/$target")
  if [[ -d "fuzz/regressions/$target" ]]; then corpora+=("fuzz/regressions/$target"); fi
  marker=$(mktemp)
  log=$(mktemp)
  echo "fuzz: $target for ${seconds} s" >&2
  set +e
  cargo fuzz run "${build[@]}" "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    2>&1 | tee "$log" | grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' >&2
  status=${PIPESTATUS[0]}
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz: $target: ${execs:-?} executions, exit $status" >&2
  if ((status != 0)); then
    failed+=("$target")
    found=$(find "fuzz/artifacts/$target" -type f -newer "$marker" | sort)
    for artifact in $found; do
      echo "fuzz: CRASH in $target: $artifact" >&2
      echo "fuzz:   replay: PATH=.tools/bin:\$PATH cargo fuzz run --fuzz-dir fuzz --sanitizer $sanitizer $target $artifact" >&2
      echo "fuzz:   keep it: cp $artifact fuzz/regressions/$target/ and add a unit test" >&2
    done
    [[ -n "$found" ]] || echo "fuzz: $target failed without leaving an artifact (see its output above)" >&2
  fi
  rm -f "$marker" "$log"
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, no crash ($((SECONDS - start)) s in all)" >&2
