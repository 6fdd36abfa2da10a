#!/usr/bin/env bash
# heartbeat.sh: how a server's heartbeat pings are spread over time, seen from its
# system calls (a figure the machine's load moves little, unlike chat latency):
# moonwire with `heartbeat: { interval: S }` holds N idle joined connections
# (`mwbench idle`), and `perf stat -I` counts the server's socket writes in 20 ms
# windows. Idle connections get nothing but pings, so the writes are the pings: a sweep
# that pings everyone at once shows as thousands of writes in a few windows and
# nothing between; a spread one as a few dozen in every window.
# Usage: tests/bench/heartbeat.sh [BUILD_DIR]   (needs perf with syscall tracepoints)
# Environment: N [9000] idle connections, S [5] heartbeat interval in seconds,
# SECS [15] seconds counted (from when the connections are joined), OUT [BUILD/hb-<date>].
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
N=${N:-9000}
S=${S:-5}
SECS=${SECS:-15}
OUT=${OUT:-$BUILD/hb-$(date +%Y%m%d-%H%M%S)}
MOONWIRE=$BUILD/moonwire
MWBENCH=$BUILD/mwbench
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pid=""
gen=""
cleanup() {
  for p in $gen $pid; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

port=$("$MWBENCH" freeport)
sed "s/@PORT@/$port/" "$ROOT/tests/bench/bench.yaml" > "$OUT/moonwire.yaml"
echo "heartbeat: { interval: ${S}s }" >> "$OUT/moonwire.yaml"
MOONWIRE_HOME=$ROOT taskset -c 0 "$MOONWIRE" serve -c "$OUT/moonwire.yaml" > "$OUT/server.log" 2>&1 &
pid=$!
"$MWBENCH" wait --port "$port" --duration 30 >/dev/null

taskset -c 1 "$MWBENCH" idle --conns "$N" --sources 8 --duration $((SECS + 5)) --port "$port" \
  --pid "$pid" --label moonwire > "$OUT/gen.txt" 2>&1 &
gen=$!
for _ in $(seq 1200); do # until the server holds the N sockets
  [ "$(ls /proc/"$pid"/fd 2>/dev/null | wc -l)" -lt "$N" ] || break
  sleep 0.1
done
sleep 1 # the joins
perf stat -I 20 -x, -e syscalls:sys_enter_sendmsg -e syscalls:sys_enter_sendto -p "$pid" \
  -- sleep "$SECS" 2> "$OUT/perf.txt" || true
wait "$gen" || true
gen=""

# One line per 20 ms window: the writes in it (sendmsg + sendto).
awk -F, '/sys_enter_send/ { w[$1] += $2 } END { for (t in w) print t, w[t] }' "$OUT/perf.txt" |
  sort -n > "$OUT/windows.txt"
p99=$(awk '{ print $2 }' "$OUT/windows.txt" | sort -n | awk '{ v[NR] = $1 } END { print v[int(NR * 0.99)] + 0 }')
awk -v n="$N" -v s="$S" -v secs="$SECS" -v p99="$p99" '
  { total += $2; if ($2 > max) max = $2; if ($2 > 0) busy++; nwin++
    if ($2 == 0) { quiet++; if (quiet > longest) longest = quiet } else quiet = 0
  }
  END {
    printf "heartbeat interval %s s, %d idle connections, %d s in 20 ms windows (%d)\n", s, n, secs, nwin
    printf "  writes %d (%.0f/s)  max in one window %d  p99 window %d  windows with writes %d\n",
      total, total / secs, max, p99, busy
    printf "  longest run of windows without a write: %d (%.2f s)\n", longest, longest * 0.02
  }' "$OUT/windows.txt" | tee "$OUT/summary.txt"
grep '^result' "$OUT/gen.txt" | tr ' ' '\n' | grep -E '^(ready|closed|conn_failed)=' | tr '\n' ' '
echo
