#!/usr/bin/env bash
# Every figure of bench/README.md's "Sending" section, in one run, on a quiet machine (about 50 minutes).
#
#   apt-get install -y postfix     # smtp-source and smtp-sink; Postfix itself needs no configuration
#   python3 bootstrap.py test      # makes .venv (then Ctrl-C is fine once the tests start)
#   bash bench/reproduce.sh [OUT]  # logs and JSON samples into OUT (default bench/results/DATE)
#
# The before/after figures of the profile-driven fixes run the same end-to-end benchmark against each
# commit's engine (a git worktree put first on PYTHONPATH), with the batch size those commits had.
set -uo pipefail  # a benchmark that fails is reported at the end; the others still run
cd "$(dirname "$0")/.."
out=${1:-bench/results/$(date -u +%Y-%m-%d)}
mkdir -p "$out"
py=.venv/bin/python
size=${HERALD_BENCH_SIZE:-48000}  # the default invitation's average message on the wire (engine_bench prints it)
failed=()
run() {
  local name=$1; shift; echo "== $name: $*"
  "$@" --json "$out/$name.json" 2>&1 | tee "$out/$name.log" || failed+=("$name")
}

run ceiling-smtp-sink $py bench/smtp_ceiling.py --size "$size" --sessions 2 --messages 20000 --runs 5 --sinks smtp-sink
run ceiling-herald $py bench/smtp_ceiling.py --size "$size" --sessions 2 --messages 3000 --runs 5 --sinks herald
run engine-10k $py bench/engine_bench.py --subscribers 10000 --runs 5 --latency-runs 5
run engine-100k $py bench/engine_bench.py --subscribers 100000 --runs 5 --latency-runs 0
run engine-10k-postgresql $py bench/engine_bench.py --subscribers 10000 --runs 5 --latency-runs 0 --backend postgresql
run engine-10k-herald-sink $py bench/engine_bench.py --subscribers 10000 --runs 5 --latency-runs 0 --sink herald
run naive $py bench/naive_baseline.py --messages 1000 --runs 5
run breakdown $py bench/breakdown_bench.py --recipients 10000 --runs 5
run fanout $py bench/fanout_bench.py --sizes 10000,100000,1000000 --runs 5

# Before and after each fix: the same 5k campaign, 5 runs, against the engine as each commit left it.
for commit in 4710396 023079d b65aac6 1ba6abd 3ac3a83; do
  tree=/tmp/herald-at-$commit
  [ -d "$tree" ] || git worktree add --detach "$tree" "$commit" >/dev/null
  PYTHONPATH=$tree run "steps-$commit" $py bench/engine_bench.py --subscribers 5000 --runs 5 --latency-runs 0 \
    --batch-size 100
done
run steps-batch-1000 $py bench/engine_bench.py --subscribers 5000 --runs 5 --latency-runs 0 --batch-size 1000
# The fan-out before it was copied inside the database (INSERT … SELECT).
PYTHONPATH=/tmp/herald-at-3ac3a83 run fanout-before-insert-select $py bench/fanout_bench.py --sizes 100000 --runs 5

if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]} (see $out/NAME.log)"; exit 1; fi
