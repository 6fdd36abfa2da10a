#!/usr/bin/env bash
# bench_smoke (CTest): ~10 seconds of the load generator against a real moonwire with
# the bench config. Asserts that the generator saw no loss, no errors, no failed
# connection and some deliveries, and that the server shut down cleanly. No speed
# number is asserted: speed is benchmark output (make bench), never a test.
# Usage: smoke.sh MOONWIRE_BIN MWBENCH_BIN
set -euo pipefail

MOONWIRE=${1:?usage: smoke.sh MOONWIRE_BIN MWBENCH_BIN}
MWBENCH=${2:?usage: smoke.sh MOONWIRE_BIN MWBENCH_BIN}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export MOONWIRE_HOME=${MOONWIRE_HOME:-$ROOT}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mwbench-smoke-XXXXXX")
pid=""

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
  echo "bench_smoke: FAILED: $*"
  echo "--- server log (tail) ---"
  tail -30 "$DIR/server.log" || true
  exit 1
}

# A free port can be taken by someone else before the server binds it: retry.
for attempt in 1 2 3; do
  port=$("$MWBENCH" freeport)
  sed "s/@PORT@/$port/" "$ROOT/tests/bench/bench.yaml" > "$DIR/moonwire.yaml"
  "$MOONWIRE" serve -c "$DIR/moonwire.yaml" > "$DIR/server.log" 2>&1 &
  pid=$!
  if "$MWBENCH" wait --port "$port" --duration 10; then break; fi
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  [ "$attempt" -lt 3 ] || fail "moonwire did not start"
done

# --strict: exit 1 on any loss, error reply, failed or closed connection, or when
# nothing was delivered at all. --check-parse: every event the generator reads in
# place is checked against its JSON walk (it aborts on a difference).
run() {
  echo "+ mwbench $*"
  "$MWBENCH" "$@" --port "$port" --pid "$pid" --label moonwire --strict --check-parse \
    > "$DIR/out.txt" 2>&1 ||
    { cat "$DIR/out.txt"; fail "mwbench $1"; }
  cat "$DIR/out.txt"
  grep -q '^result .* conn_failed=0 closed=0' "$DIR/out.txt" || fail "$1: failed connections"
}
run fanout --members 200 --publishers 2 --rate 200 --duration 3 --drain 5
run chat --rooms 20 --room-members 5 --msg-rate 2 --duration 3 --drain 5 --idle 200
grep -q '^result .* loss=0 ' "$DIR/out.txt" || fail "chat: loss"
grep -q '^result .* idle_ready=200 ' "$DIR/out.txt" || fail "chat: idle connections"
run connect --concurrency 8 --duration 1
run idle --conns 300 --duration 0.5

kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "moonwire still running 10 s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "moonwire exited with status $rc after SIGTERM"
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$DIR/server.log"; then
  fail "sanitizer report"
fi
echo "bench_smoke: ok"
