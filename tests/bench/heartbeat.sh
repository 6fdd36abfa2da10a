#!/usr/bin/env bash
# heartbeat.sh: how a server's heartbeat pings are spread over time, seen from its
# system calls (a figure the machine's load moves little, unlike chat latency):
# moonwire with `heartbeat: { interval: S }` holds N idle joined connections
# (`mwbench idle`), and perf's syscall tracepoints count the server's socket writes in 20 ms
# windows, and how long each loop iteration works (from epoll_wait's return to the
# next call). Idle connections get nothing but pings, so the writes are the pings: a
# sweep that pings everyone at once shows as thousands of writes in a few windows,
# nothing between, and iterations of hundreds of ms; a spread one as a few dozen
# writes in every window and short iterations.
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
perf record -q -o "$OUT/perf.data" -e syscalls:sys_enter_sendmsg -e syscalls:sys_enter_sendto \
  -e syscalls:sys_enter_epoll_wait -e syscalls:sys_exit_epoll_wait -p "$pid" -- sleep "$SECS" \
  2> "$OUT/perf.err" || true
wait "$gen" || true
gen=""
perf script -i "$OUT/perf.data" -F time,event 2>/dev/null | tr -d ':' > "$OUT/events.txt"

# Writes per 20 ms window (sendmsg + sendto), and the loop's iterations: the time from
# one epoll_wait's return to the next call, i.e. the work of one iteration, during which
# nothing else is read or written.
awk -v n="$N" -v s="$S" -v secs="$SECS" '
  NR == 1 { t0 = $1 }
  { w = int(($1 - t0) / 0.02) }
  $2 ~ /sys_enter_send/ { writes[w]++; total++ }
  $2 ~ /sys_exit_epoll_wait/ { out = $1 }
  $2 ~ /sys_enter_epoll_wait/ && out { d = ($1 - out) * 1000; iters++; if (d > maxd) maxd = d; if (d > 1) over1++; if (d > 5) over5++; out = 0 }
  END {
    nwin = int(secs / 0.02)
    for (i = 0; i < nwin; i++) {
      v = writes[i] + 0; if (v > max) max = v; if (v > 0) busy++
      if (v == 0) { quiet++; if (quiet > longest) longest = quiet } else quiet = 0
    }
    printf "heartbeat interval %s s, %d idle connections, %d s in 20 ms windows (%d)\n", s, n, secs, nwin
    printf "  writes %d (%.0f/s)  most in one window %d  windows with writes %d\n", total, total / secs, max, busy
    printf "  longest run of windows without a write: %d (%.2f s)\n", longest, longest * 0.02
    printf "  loop iterations %d: longest %.2f ms, %d over 1 ms, %d over 5 ms\n", iters, maxd, over1, over5
  }' "$OUT/events.txt" | tee "$OUT/summary.txt"
grep '^result' "$OUT/gen.txt" | tr ' ' '\n' | grep -E '^(ready|closed|conn_failed)=' | tr '\n' ' '
echo
