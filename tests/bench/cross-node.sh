#!/usr/bin/env bash
# Cross-node delivery over Redis (issue 4): one redis-server and two moonwire nodes on
# free loopback ports, one room whose members alternate between the nodes (the
# publisher is on node A), measured with mwbench fanout --port2 at a few rates.
# Servers and Redis are pinned to CPU 0, the generator to CPU 1; everything stops by
# itself and is killed at exit.
# Usage: tests/bench/cross-node.sh [BUILD_DIR=build]   env: MEMBERS (200) RATES ("100 500 1000")
#        DURATION (8)  HISTORY ("{ size: 100 }", or "off") the chat route's history
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
MEMBERS=${MEMBERS:-200}
RATES=${RATES:-100 500 1000}
DURATION=${DURATION:-8}
HISTORY=${HISTORY:-"{ size: 100 }"}
export MOONWIRE_HOME=$ROOT
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mw-cross-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  { wait; } 2>/dev/null || true # reap them without "Killed" lines
  rm -rf "$DIR"
}
trap cleanup EXIT

MWBENCH=$BUILD/mwbench
rport=$("$MWBENCH" freeport)
taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  > "$DIR/redis.log" 2>&1 &
pids+=($!)
ports=()
for n in a b; do
  p=$("$MWBENCH" freeport)
  ports+=("$p")
  cat > "$DIR/$n.yaml" <<YAML
listen: 127.0.0.1:$p
node_id: bench-$n
routes:
  /chat: { script: "app:chat", history: $HISTORY }
redis: { url: "redis://127.0.0.1:$rport" }
dev: { user_param: true }
limits: { rate: 1000000, burst: 1000000, send_queue: 4MiB, max_connections: 100000 }
log: { level: warn }
YAML
  taskset -c 0 "$BUILD/moonwire" serve -c "$DIR/$n.yaml" > "$DIR/$n.log" 2>&1 &
  pids+=($!)
done
for p in "${ports[@]}"; do "$MWBENCH" wait --port "$p" --duration 10 >/dev/null; done
sleep 0.5 # both nodes report redis up
echo "# cross-node fanout: $MEMBERS members, half on each node, publisher on node A"
for rate in $RATES; do
  taskset -c 1 "$MWBENCH" fanout --port "${ports[0]}" --port2 "${ports[1]}" \
    --members "$MEMBERS" --publishers 1 --rate "$rate" --duration "$DURATION" \
    --label "cross-node-$rate" --pid "${pids[1]}" 2>&1 | grep -vE '^(#|$)' || true
done
if [ "${RAMP:-1}" = 1 ]; then
  echo "# cross-node ramp: the highest publish rate with p99 <= 100 ms and no loss"
  taskset -c 1 "$MWBENCH" ramp --port "${ports[0]}" --port2 "${ports[1]}" \
    --members "$MEMBERS" --publishers 1 --duration 4 --ramp-start 200 --ramp-steps 8 \
    --label cross-node-ramp --pid "${pids[1]}" 2>&1 | grep -E '^result' | tail -1 || true
fi
