#!/usr/bin/env bash
# bench.sh runs imgctl's benchmarks. Each writes JSON figures under bench/results/,
# every figure a ratio against a baseline measured in the same run (mksquashfs,
# sha256sum, dnsmasq, tftp-hpa, plain net/http, …). Benchmarks are Go tests named
# TestBench* that run only with IMGCTL_BENCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export IMGCTL_BENCH=1
export IMGCTL_BENCH_DIR="$PWD/bench/results"
mkdir -p "$IMGCTL_BENCH_DIR"

# Test files under hidden directories (scratch copies) are not ours to run.
pkgs=$(find . -path './.*' -prune -o -name '*_test.go' -print | xargs -r grep -l 'func TestBench' | xargs -r -n1 dirname | sort -u)
status=0
for p in $pkgs; do
  echo "== bench $p" >&2
  go test -count=1 -timeout 60m -run '^TestBench|^TestLoad' -v "$p" || status=1
done
echo "results:" >&2
ls -1 "$IMGCTL_BENCH_DIR"/*.json 2>/dev/null >&2 || true
exit $status
