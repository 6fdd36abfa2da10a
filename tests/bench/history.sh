#!/usr/bin/env bash
# What history costs (issue 5): the fan-out ceiling and latency of the chat app with
# the route's history on (100 per room, the default) and off, on one node (history in
# memory) and on two nodes over Redis (history in a Redis Stream, seq from Redis), in
# interleaved rounds; then the memory one room's full history takes, in the server
# and in Redis (tests/bench/history-memory.js).
# Servers (and Redis) are pinned to CPU 0, the generator to CPU 1; every run stops by
# itself and everything started is killed at exit.
# Usage: tests/bench/history.sh [BUILD_DIR=build]
#        env: ROUNDS (3) MEMBERS (1000) RATE (200) DURATION (5) CROSS (1: two nodes too)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
ROUNDS=${ROUNDS:-3}
MEMBERS=${MEMBERS:-1000}
RATE=${RATE:-200}
DURATION=${DURATION:-5}
CROSS=${CROSS:-1}
export MOONWIRE_HOME=$ROOT
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mw-hist-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  { wait; } 2>/dev/null || true # reap them without "Killed" lines
  rm -rf "$DIR"
}
trap cleanup EXIT
MWBENCH=$BUILD/mwbench

# One node, history $1: a fixed-rate fanout and a ramp; prints the result lines.
single() {
  local history=$1 port pid
  port=$("$MWBENCH" freeport)
  cat > "$DIR/single.yaml" <<YAML
listen: 127.0.0.1:$port
routes:
  /chat: { script: "app:chat", history: $history }
dev: { user_param: true }
limits: { rate: 1000000, burst: 1000000, send_queue: 4MiB, max_connections: 100000 }
log: { level: warn }
YAML
  taskset -c 0 "$BUILD/moonwire" serve -c "$DIR/single.yaml" > "$DIR/single.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  "$MWBENCH" wait --port "$port" --duration 10 >/dev/null
  taskset -c 1 "$MWBENCH" fanout --port "$port" --pid "$pid" --members "$MEMBERS" \
    --publishers 1 --rate "$RATE" --duration "$DURATION" --label "single-$2-fanout$RATE" \
    2>&1 | grep -E '^result' || true
  taskset -c 1 "$MWBENCH" ramp --port "$port" --pid "$pid" --members "$MEMBERS" \
    --publishers 1 --ramp-start 20 --ramp-step 2 --drain 2 --read-batch-us 1000 \
    --label "single-$2-ramp" 2>&1 | grep -E '^result' | tail -1 || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round: one node, $MEMBERS members, history on / off"
  if [ $((round % 2)) = 1 ]; then order="on off"; else order="off on"; fi
  for h in $order; do
    if [ "$h" = on ]; then single "{ size: 100 }" on; else single off off; fi
  done
  if [ "$CROSS" = 1 ]; then
    echo "# round $round: two nodes over Redis, $MEMBERS members, history on / off"
    for h in $order; do
      if [ "$h" = on ]; then hist="{ size: 100 }"; else hist=off; fi
      HISTORY=$hist MEMBERS=$MEMBERS RATES="$RATE" DURATION=$DURATION \
        bash "$ROOT/tests/bench/cross-node.sh" "$BUILD" 2>&1 | grep -vE '^#' |
        sed "s/label=cross-node/label=cross-$h/"
    done
  fi
done
echo "# memory of one room's history"
node "$ROOT/tests/bench/history-memory.js"
