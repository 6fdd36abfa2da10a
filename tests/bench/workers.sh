#!/usr/bin/env bash
# `workers: N` against `workers: 1` (issue 6): one redis-server and moonwire with the
# same config except `workers`, through the fan-out ramp and the chat scenario.
# Nothing is pinned: N workers need N cores, and this machine has two, shared by the
# workers, Redis and the generator; both server shapes run with Redis configured so
# that the only difference is the worker count. Rounds alternate the order.
# Usage: tests/bench/workers.sh [BUILD_DIR=build]
#   env: WORKERS ("1 2") ROUNDS (3) MEMBERS (1000) CHAT_RATE (10) DURATION (5)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
WORKERS=${WORKERS:-1 2}
ROUNDS=${ROUNDS:-3}
MEMBERS=${MEMBERS:-1000}
CHAT_RATE=${CHAT_RATE:-10}
DURATION=${DURATION:-5}
export MOONWIRE_HOME=$ROOT
DIR=$(mktemp -d "${TMPDIR:-/tmp}/mw-workers-XXXXXX")
MWBENCH=$BUILD/mwbench
redis_pid=""
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && sleep 1
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill -KILL "$redis_pid" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rport=$("$MWBENCH" freeport)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no > "$DIR/redis.log" 2>&1 &
redis_pid=$!

run() { # workers scenario
  local w=$1 scen=$2 port
  port=$("$MWBENCH" freeport)
  cat > "$DIR/mw.yaml" <<YAML
listen: 127.0.0.1:$port
workers: $w
routes:
  /chat: { script: "app:chat" }
redis: { url: "redis://127.0.0.1:$rport" }
dev: { user_param: true }
limits: { rate: 1000000, burst: 1000000, send_queue: 4MiB, max_connections: 100000 }
log: { level: warn }
YAML
  "$BUILD/moonwire" serve -c "$DIR/mw.yaml" > "$DIR/mw-$w.log" 2>&1 &
  server_pid=$!
  "$MWBENCH" wait --port "$port" --duration 10 >/dev/null
  sleep 0.5 # every worker listening and connected to Redis
  # --pid: the process whose CPU is reported; with workers that is the master, which
  # does nothing: server_cpu_pct is then meaningless (see other_cpu_pct).
  case $scen in
    ramp)
      "$MWBENCH" ramp --port "$port" --members "$MEMBERS" --publishers 1 --ramp-start 20 \
        --ramp-step 2 --drain 2 --read-batch-us 1000 --label "workers-$w" --pid "$server_pid" 2>&1 |
        grep -E '^result' | tail -1 || true ;;
    chat)
      "$MWBENCH" chat --port "$port" --rooms 100 --room-members 10 --msg-rate "$CHAT_RATE" \
        --duration "$DURATION" --label "workers-$w" --pid "$server_pid" 2>&1 |
        grep -E '^result' || true ;;
  esac
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

for r in $(seq 1 "$ROUNDS"); do
  order=$WORKERS
  [ $((r % 2)) = 0 ] && order=$(echo "$WORKERS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for scen in ramp chat; do
    for w in $order; do
      echo "# round $r: workers=$w $scen"
      run "$w" "$scen"
    done
  done
done
