#!/usr/bin/env bash
# cpu.sh: the server's user and system CPU per chat message and per handshake, read
# from /proc/<pid>/stat (utime and stime, fields 14 and 15) before and after one
# mwbench run, for one or more builds, interleaved. The server runs on CPU 0, the
# generator on CPU 1 (as in docs/performance.md).
# Usage: tests/bench/cpu.sh HOME=BINARY [HOME=BINARY...]
#   e.g. tests/bench/cpu.sh /work/main=/work/main/build/moonwire $PWD=$PWD/build/moonwire
# Environment: RUNS [3], SECS [5], MWBENCH [build/mwbench of this tree],
# SCENARIOS ["chat connect"].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MWBENCH=${MWBENCH:-$ROOT/build/mwbench}
RUNS=${RUNS:-3}
SECS=${SECS:-5}
SCENARIOS=${SCENARIOS:-"chat connect"}
TICK=$(getconf CLK_TCK)
OUT=$(mktemp -d)
pid=""
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$OUT"; }
trap cleanup EXIT

cpu_ticks() { # pid -> "utime stime" (the command name may hold spaces: cut after ')')
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'
}

one() { # home binary scenario
  local home=$1 bin=$2 scen=$3 port
  port=$("$MWBENCH" freeport)
  sed "s/@PORT@/$port/" "$ROOT/tests/bench/bench.yaml" > "$OUT/cfg.yaml"
  MOONWIRE_HOME=$home taskset -c 0 "$bin" serve -c "$OUT/cfg.yaml" > "$OUT/server.log" 2>&1 &
  pid=$!
  "$MWBENCH" wait --port "$port" --duration 30 >/dev/null
  local args key
  if [ "$scen" = chat ]; then
    args="chat --rooms 100 --room-members 10 --msg-rate 10 --duration $SECS"; key=sent
  else
    args="connect --concurrency 32 --duration $SECS"; key=completed
  fi
  read -r u0 s0 < <(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  taskset -c 1 "$MWBENCH" $args --port "$port" --pid "$pid" > "$OUT/gen.txt" 2>&1 || true
  read -r u1 s1 < <(cpu_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  local n
  n=$(grep '^result ' "$OUT/gen.txt" | tr ' ' '\n' | sed -n "s/^$key=//p" | head -1)
  awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="${n:-0}" -v t="$TICK" -v b="$bin" -v sc="$scen" -v k="$key" \
    'BEGIN { if (n > 0) printf "%-8s %-40s %s=%-8d user %6.2f us  sys %6.2f us\n", sc, b, k, n, u / t / n * 1e6, s / t / n * 1e6; else printf "%-8s %-40s no result\n", sc, b }'
}

for scen in $SCENARIOS; do
  for _ in $(seq "$RUNS"); do
    for hb in "$@"; do one "${hb%%=*}" "${hb#*=}" "$scen"; done
  done
done
