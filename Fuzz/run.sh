#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60) on its corpus, two at a
# time (JOBS=2; the machine is shared). Prints per target the executions, exec/s, coverage
# and whether it crashed; exits non-zero if any target crashed, timed out or ran out of memory.
#
#   Fuzz/run.sh [seconds] [target...]       targets: FuzzVirtqueue FuzzBlockRequest FuzzNet FuzzIPC FuzzConfig FuzzQcow2 FuzzSnapshot
#
# Seeds are read from corpus/<target>/ (kept in git, never written); what the fuzzer finds
# goes to .work/corpus/<target>/ (ignored), logs to .work/logs/, and crash inputs to
# crashes/<target>-crash-<sha1> (libFuzzer's -artifact_prefix).
set -u
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(FuzzVirtqueue FuzzBlockRequest FuzzNet FuzzIPC FuzzConfig FuzzQcow2 FuzzSnapshot)
JOBS=${JOBS:-2}
SWIFT=${SWIFT:-$(command -v swift || echo /opt/swift/usr/bin/swift)}
EXTRA_ARGS=${FUZZ_ARGS:-}

echo "building fuzz targets..."
# SwiftPM keeps its build plan for the main package (a path dependency) and does not see a
# source file added there since: without this the build failed, and the fuzzers that ran
# were the ones left from an earlier build.
mkdir -p .build && rm -f .build/debug.yaml
"$SWIFT" build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing -Xswiftc -use-ld=lld \
    > .build/fuzz-build.log 2>&1
status=$?
grep -v "Cannot export local symbol" .build/fuzz-build.log | grep -E "error|warning: |Build complete" | head -40
if [ $status -ne 0 ]; then
    echo "build failed (status $status): see Fuzz/.build/fuzz-build.log; no fuzzer was run"
    exit 2
fi

mkdir -p .work/logs crashes
run_one() {
    local target=$1
    mkdir -p ".work/corpus/$target" "corpus/$target"
    # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: the machine is shared.
    # shellcheck disable=SC2086
    ".build/debug/$target" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="crashes/$target-" $EXTRA_ARGS ".work/corpus/$target" "corpus/$target" \
        > ".work/logs/$target.log" 2>&1
    echo $? > ".work/logs/$target.rc"
}

running=0
for target in "${TARGETS[@]}"; do
    run_one "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

failed=0
printf '%-18s %12s %8s %8s %8s  %s\n' target execs exec/s cov ft result
for target in "${TARGETS[@]}"; do
    log=".work/logs/$target.log"
    rc=$(cat ".work/logs/$target.rc" 2>/dev/null || echo "?")
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{print $2}')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="CRASHED (exit $rc): $(grep -oE "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')"
        failed=1
    fi
    printf '%-18s %12s %8s %8s %8s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
[ "$failed" = 0 ] || echo "see Fuzz/.work/logs/<target>.log for the stack"
exit "$failed"
