#!/usr/bin/env bash
# cost.sh: where moonwire's CPU goes per chat message and per handshake, in figures that
# do not move with the machine's load:
#   1. system calls per message, per delivery and per handshake (perf's syscall
#      tracepoints on the server, or strace -c when perf cannot), natively;
#   2. instructions (valgrind's callgrind) per message and per handshake, in total and
#      for the parts of the path named below (inclusive counts), counted only over the
#      measured part (zeroed after the set-up, dumped after the drain).
# User-space instructions only: the kernel's share shows in (1) and in perf record.
# Functions not in the profile (renamed, or another version of the server) are left out.
# Usage: tests/bench/cost.sh [BUILD_DIR]   (needs valgrind; perf or strace for 1)
# Environment: RATE [0.2] msg/s per member under callgrind (100 rooms x 10, so
# 200 msg/s, 2,000 deliveries/s), SECS [10], CONNECTS_SECS [10], OUT [BUILD/cost-<date>],
# PARTS ["sys chat handshake"].
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RATE=${RATE:-0.2}
SECS=${SECS:-10}
CONNECTS_SECS=${CONNECTS_SECS:-10}
OUT=${OUT:-$BUILD/cost-$(date +%Y%m%d-%H%M%S)}
PARTS=${PARTS:-"sys chat handshake"}
MOONWIRE=$BUILD/moonwire
MWBENCH=$BUILD/mwbench
mkdir -p "$OUT"
cmake --build "$BUILD" -j"$(nproc)" --target moonwire mwbench >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pid=""
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

config() { # port
  sed "s/@PORT@/$1/" "$ROOT/tests/bench/bench.yaml" > "$OUT/moonwire-$1.yaml"
  echo "$OUT/moonwire-$1.yaml"
}

start() { # port prefix...: starts moonwire (under the prefix command) and waits for it
  local port=$1; shift
  MOONWIRE_HOME=$ROOT taskset -c 0 "$@" "$MOONWIRE" serve -c "$(config "$port")" \
    > "$OUT/server-$port.log" 2>&1 &
  pid=$!
  "$MWBENCH" wait --port "$port" --duration 60 >/dev/null
}

stop() {
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  cleanup
  pid=""
}

kv() { # file key: the value of key in the file's result line
  grep '^result ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# ---- 1. system calls, natively ----
syscalls() { # label count-key mwbench-args...
  local label=$1 key=$2; shift 2
  local port; port=$("$MWBENCH" freeport)
  start "$port"
  local out=$OUT/sys-$label.txt
  if perf stat -e 'syscalls:sys_enter_sendto' true >/dev/null 2>&1; then
    taskset -c 1 "$MWBENCH" "$@" --port "$port" --pid "$pid" --label moonwire --settle 3 \
      > "$out.gen" 2>&1 &
    local gen=$!
    sleep 2.5 # set-up done, measure the run
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$pid" -- sleep "$SECS" 2> "$out.raw" || true
    wait "$gen" || true
  else
    strace -c -f -p "$pid" -o "$out.raw" &
    local st=$!
    taskset -c 1 "$MWBENCH" "$@" --port "$port" --pid "$pid" --label moonwire > "$out.gen" 2>&1 || true
    kill -INT "$st"; wait "$st" || true
  fi
  stop
  local n; n=$(kv "$out.gen" "$key")
  local secs; secs=$(kv "$out.gen" duration_s)
  {
    echo "# $label: system calls per $key (${n:-?} over the run; perf counted $SECS s of it)"
    awk -F, -v n="${n:-0}" -v run="${secs:-0}" -v win="$SECS" '
      /sys_enter_/ && $1 + 0 > 0 {
        name = $3; sub(/.*sys_enter_/, "", name)
        rate = (run > 0 && win < run) ? win / run : 1
        if (n > 0) printf "  %-16s %10d  %8.3f\n", name, $1, $1 / (n * rate)
      }' "$out.raw" | sort -k3 -rn
  } | tee "$out"
}

# ---- 2. instructions under callgrind ----
callgrind_run() { # label count-key settle-secs mwbench-args...
  local label=$1 key=$2 settle=$3; shift 3
  local port; port=$("$MWBENCH" freeport)
  local cg=$OUT/callgrind-$label.out
  start "$port" valgrind --tool=callgrind --callgrind-out-file="$cg" --dump-instr=no \
    --collect-atstart=yes
  [ "$settle" != 0 ] || callgrind_control -z "$pid" >/dev/null # nothing to set up
  stdbuf -oL "$MWBENCH" "$@" --port "$port" --pid "$pid" --label moonwire --settle "$settle" \
    --setup-timeout 120 --drain 10 > "$OUT/gen-$label.txt" 2>&1 &
  local gen=$!
  if [ "$settle" != 0 ]; then
    # zero once the set-up is over (the generator says so), before the sending starts
    for _ in $(seq 1200); do
      grep -q 'connections joined in' "$OUT/gen-$label.txt" 2>/dev/null && break
      sleep 0.1
    done
    sleep 1
    callgrind_control -z "$pid" >/dev/null
  fi
  wait "$gen" || true
  callgrind_control -d "$label" "$pid" >/dev/null
  stop
  ls "$cg".[0-9]* | tail -1 # the dump; "$cg" itself holds what came after it
}

report() { # label dump count what functions...
  local label=$1 dump=$2 n=$3 what=$4; shift 4
  local ann=$OUT/annotate-$label.txt
  callgrind_annotate --inclusive=yes --threshold=100 "$dump" > "$ann" 2>/dev/null
  local total
  total=$(sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' "$ann" | tr -d ,)
  {
    echo "# $label: instructions per $what ($n ${what}s; callgrind, user space only)"
    printf "  %-44s %12.0f\n" "all (the measured part)" "$(echo "$total / $n" | bc -l)"
    for f in "$@"; do
      local ir
      ir=$(grep -E "[ :]$f( |$)" "$ann" | head -1 | awk '{gsub(/,/, "", $1); print $1}' || true)
      [ -n "$ir" ] && printf "  %-44s %12.0f\n" "$f" "$(echo "$ir / $n" | bc -l)"
    done
  } | tee "$OUT/$label.txt"
}

echo "output in $OUT"
if [[ " $PARTS " == *" sys "* ]]; then
  syscalls chat10 sent chat --rooms 100 --room-members 10 --msg-rate 10 --duration $((SECS + 4))
  syscalls handshake completed connect --concurrency 32 --duration $((SECS + 4))
fi

if [[ " $PARTS " == *" chat "* ]]; then
  dump=$(callgrind_run chat sent 2 chat --rooms 100 --room-members 10 --msg-rate "$RATE" --duration "$SECS")
  report chat "$dump" "$(kv "$OUT/gen-chat.txt" sent)" message \
    lws_service_fd_tsi mw_server_conn_input mw_script_message resume lua_resume \
    lua_newthread mw_lua_push_conn l_decode_message l_encode l_publish mw_history_publish \
    mw_json_encode mw_json_decode_message mw_buf_printf vsnprintf l_dedup_begin l_dedup_end \
    mw_room_broadcast mw_conn_send mw_conn_flush_pending flush_one lws_write _lws_log \
    frames_in mw_wsrx_feed ws_flush \
    malloc realloc free
fi

if [[ " $PARTS " == *" handshake "* ]]; then
  dump=$(callgrind_run handshake completed 0 connect --concurrency 8 --duration "$CONNECTS_SECS")
  report handshake "$dump" "$(kv "$OUT/gen-handshake.txt" completed)" handshake \
    lws_service_fd_tsi on_readable lws_adopt_socket_vhost lws_close_free_wsi \
    mw_ws_accept upgrade lws_SHA1 on_closed \
    __lws_close_free_wsi_final mw_conn_new mw_conn_free mw_script_connect \
    mw_script_message mw_script_disconnect lua_resume l_decode_message l_encode mw_presence_join \
    mw_presence_leave_all mw_history_read mw_session_attach _lws_log malloc free
fi
