#!/usr/bin/env bash
# Runs every coverage-guided fuzz target in fuzz/ for a bounded time.
#
#   FUZZ_SECONDS=60      how long each target runs (default 60)
#   FUZZ_TARGETS="a b"   only these targets (default: all of them)
#   FUZZ_SANITIZER=address|none   (default address; none if ASan cannot build)
#
# cargo-fuzz drives libFuzzer and builds with `-Z` flags (sanitizer, coverage
# instrumentation) that only nightly rustc accepts. The stable toolchain
# accepts them too when RUSTC_BOOTSTRAP=1 is set, which is what this script
# does, for the fuzz build only (its own target directory, fuzz/target). The
# stable rust-std ships the ASan runtime, so `-s address` works as well.
#
# cargo-fuzz is used from PATH if there, else installed into fuzz/.tools.
# Exits non-zero if any target crashes, panics, fails an assertion, hangs
# (an input running over 10 s) or runs out of memory; the input that did it
# is written under fuzz/artifacts/<target>/ and its path is printed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
CARGO_FUZZ_VERSION=0.13
TOOLS=$ROOT/fuzz/.tools
LOGS=$ROOT/fuzz/target/logs

if ! [[ $FUZZ_SECONDS =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz: FUZZ_SECONDS must be a positive whole number of seconds, not '$FUZZ_SECONDS'" >&2
    exit 2
fi

# --- cargo-fuzz ---
if cargo fuzz --version >/dev/null 2>&1; then
    CARGO_FUZZ=(cargo fuzz)
else
    if ! [ -x "$TOOLS/bin/cargo-fuzz" ]; then
        echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into fuzz/.tools (once)"
        cargo install cargo-fuzz --version "~$CARGO_FUZZ_VERSION" --locked --root "$TOOLS"
    fi
    CARGO_FUZZ=("$TOOLS/bin/cargo-fuzz")
fi
echo "fuzz: using $("${CARGO_FUZZ[@]}" --version) with $(rustc --version) and RUSTC_BOOTSTRAP=1"

# The fuzz build needs nightly-only `-Z` flags; see the top of this file.
export RUSTC_BOOTSTRAP=1

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <("${CARGO_FUZZ[@]}" list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz: no targets found in fuzz/" >&2
    exit 2
fi

# --- build all targets once ---
sanitizer=(--sanitizer "$FUZZ_SANITIZER")
if ! "${CARGO_FUZZ[@]}" build "${sanitizer[@]}"; then
    if [ "$FUZZ_SANITIZER" = none ]; then
        echo "fuzz: the fuzz targets do not build" >&2
        exit 2
    fi
    echo "fuzz: building with --sanitizer $FUZZ_SANITIZER failed; retrying with --sanitizer none" >&2
    sanitizer=(--sanitizer none)
    "${CARGO_FUZZ[@]}" build "${sanitizer[@]}"
fi

# --- run each target for FUZZ_SECONDS ---
mkdir -p "$LOGS"
crashes=0
failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log=$LOGS/$target.log
    echo "fuzz: $target for ${FUZZ_SECONDS}s (log: ${log#"$ROOT"/})"
    status=0
    # libFuzzer stops itself after -max_total_time; `timeout` is the backstop
    # should it not. -timeout makes a slow input a failure (a hang), and
    # -rss_limit_mb a memory blow-up.
    timeout --kill-after=10 "$((FUZZ_SECONDS + 120))" \
        "${CARGO_FUZZ[@]}" run "${sanitizer[@]}" "$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        echo "fuzz: $target ok: ${runs:-no run count}s, ${cov:-no coverage figures}, corpus $corpus inputs"
    else
        crashes=$((crashes + 1))
        failed+=("$target")
        echo "fuzz: $target FAILED (exit $status); from its log:" >&2
        grep -E -A4 'panicked at|==[0-9]+==ERROR|ERROR: libFuzzer|SUMMARY:|ALARM:|^error' "$log" | head -40 >&2 ||
            tail -25 "$log" >&2
        if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
            echo "fuzz: $target did not stop within its time bound" >&2
        fi
        grep -oE 'Test unit written to .*' "$log" | sed "s|^|fuzz: $target: |" >&2 || true
        echo "fuzz: reproduce with: RUSTC_BOOTSTRAP=1 ${CARGO_FUZZ[*]} run ${sanitizer[*]} $target <artifact>" >&2
    fi
done

echo "fuzz: ${#targets[@]} targets, $crashes crashes (${FUZZ_SECONDS}s each, sanitizer ${sanitizer[1]})"
if [ "$crashes" -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
