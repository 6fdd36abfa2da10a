#!/usr/bin/env bash
# `make bench`: runs moonwire, the Node `ws` peer (tests/bench/peers/node-ws) and, when
# UWS_PEER names its binary, a uWebSockets peer built outside the tree, through the
# benchmark scenarios with tests/bench/gen's generator, interleaved, ROUNDS times,
# and prints one table of medians with moonwire's ratio to each peer.
#
# Each run gets a freshly started server pinned to SERVER_CPU; the generator runs on
# GEN_CPU. Every run is bounded in time by the generator; servers are stopped on exit.
# Environment (defaults in brackets; the defaults take ~15 minutes on 2 cores with two
# servers, ~22 with three):
#   ROUNDS [3]  SERVERS ["moonwire node", with UWS_PEER "moonwire uws node"]
#   SCENARIOS ["ramp fanout chat10 chat1 idle connect chat5 hb5:9000 hb5:18000
#              hbdefault:18000"]; hbS:N is chat 100x10 @ 5 msg/s with N idle connections
#              beside it and the servers' heartbeat at S seconds (hbdefault: theirs)
#   DURATION [5] seconds per measured run   RAMP_STEP [2] seconds per ramp step
#   HB_DURATION [10] seconds of an hbS:N run  HB_DEFAULT_DURATION [30] of hbdefault:N
#   (a run must hold at least one heartbeat sweep)
#   FANOUT_MEMBERS [1000]  FANOUT_RATE [1000] msg/s (1M deliveries/s)  IDLE_N [19000]
#   CONNECT_CONCURRENCY [32]  SERVER_CPU [0]  GEN_CPU [1]
#   UWS_PEER [""] a uWebSockets peer's binary, started as: UWS_PEER --port P [--heartbeat S]
#   BUILD [build]  OUT [$BUILD/bench-<date>]  MWBENCH_ARGS [""] extra generator options
#   COMMIT [git HEAD] the commit named in the header
#   BENCH_CONFIG [tests/bench/bench.yaml] moonwire's config (bench-features.yaml: with
#              compression, token checking and the watchdog's limit set)
#   IDLE_HOLDER [process] where hbS:N's idle connections live: "process", a second
#              generator process (`mwbench idle`, on GEN_CPU too) that answers their
#              pings, so that the measuring generator's loop does not; "inline", in
#              the measuring generator itself (`mwbench chat --idle N`)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ROUNDS=${ROUNDS:-3}
UWS_PEER=${UWS_PEER:-}
if [ -n "$UWS_PEER" ]; then SERVERS=${SERVERS:-"moonwire uws node"}; else SERVERS=${SERVERS:-"moonwire node"}; fi
SCENARIOS=${SCENARIOS:-"ramp fanout chat10 chat1 idle connect chat5 hb5:9000 hb5:18000 hbdefault:18000"}
DURATION=${DURATION:-5}
HB_DURATION=${HB_DURATION:-10}
HB_DEFAULT_DURATION=${HB_DEFAULT_DURATION:-30}
RAMP_STEP=${RAMP_STEP:-2}
FANOUT_MEMBERS=${FANOUT_MEMBERS:-1000}
FANOUT_RATE=${FANOUT_RATE:-1000}
IDLE_N=${IDLE_N:-19000}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-32}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
MWBENCH_ARGS=${MWBENCH_ARGS:-}
BENCH_CONFIG=${BENCH_CONFIG:-$ROOT/tests/bench/bench.yaml}
case $BENCH_CONFIG in /*) ;; *) BENCH_CONFIG=$ROOT/$BENCH_CONFIG ;; esac
IDLE_HOLDER=${IDLE_HOLDER:-process}
case $IDLE_HOLDER in process|inline) ;; *) echo "run.sh: IDLE_HOLDER is process or inline" >&2; exit 2 ;; esac
OUT=${OUT:-$BUILD/bench-$(date +%Y%m%d-%H%M%S)}
export FANOUT_RATE FANOUT_MEMBERS IDLE_N # for table.js

MOONWIRE=$BUILD/moonwire
MWBENCH=$BUILD/mwbench
PEER=$ROOT/tests/bench/peers/node-ws/server.js
RESULTS=$OUT/results.txt

say() { printf '%s\n' "$*" >&2; }

for scen in $SCENARIOS; do
  case $scen in
    ramp|fanout|chat10|chat1|chat5|idle|connect|hbdefault:[0-9]*) ;;
    hb[0-9]*:[0-9]*) ;;
    *) say "run.sh: unknown scenario '$scen' (ramp fanout chat10 chat1 chat5 idle connect hbS:N hbdefault:N)"; exit 2 ;;
  esac
done
for kind in $SERVERS; do
  case $kind in
    moonwire|node) ;;
    uws)
      if [ ! -x "$UWS_PEER" ]; then say "run.sh: server uws needs UWS_PEER=<the peer's binary> (got '$UWS_PEER')"; exit 2; fi ;;
    *) say "run.sh: unknown server '$kind' (moonwire node uws)"; exit 2 ;;
  esac
done

# ---- build ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target moonwire mwbench >/dev/null
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
case $build_type in
  RelWithDebInfo|Release) ;;
  *) say "warning: $BUILD is a '$build_type' build: numbers are not representative" ;;
esac
if ! node -e "require.resolve('ws', { paths: ['$ROOT'] })" 2>/dev/null; then
  say "run.sh: the Node peer needs ws from the repository's node_modules: run 'npm ci' first"
  exit 1
fi

# The servers and the generator inherit this: the idle scenario holds IDLE_N sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((IDLE_N + 100)) ]; then
  say "note: the open-files limit is $nofile: the idle scenario will hold fewer than $IDLE_N"
fi

mkdir -p "$OUT"
: > "$RESULTS"

# ---- servers ----
server_pid=""
server_log=""

start_server() { # kind port [heartbeat seconds; empty: the server's default]
  local kind=$1 port=$2 hb=${3:-}
  server_log=$OUT/server-$kind-$port.log
  case $kind in
    moonwire)
      sed "s/@PORT@/$port/" "$BENCH_CONFIG" > "$OUT/moonwire-$port.yaml"
      [ -z "$hb" ] || echo "heartbeat: { interval: ${hb}s }" >> "$OUT/moonwire-$port.yaml"
      MOONWIRE_HOME=$ROOT taskset -c "$SERVER_CPU" "$MOONWIRE" serve -c "$OUT/moonwire-$port.yaml" \
        >"$server_log" 2>&1 &
      ;;
    node)
      taskset -c "$SERVER_CPU" node "$PEER" --port "$port" ${hb:+--heartbeat "$hb"} >"$server_log" 2>&1 &
      ;;
    uws)
      taskset -c "$SERVER_CPU" "$UWS_PEER" --port "$port" ${hb:+--heartbeat "$hb"} >"$server_log" 2>&1 &
      ;;
    *) say "unknown server '$kind'"; exit 2 ;;
  esac
  server_pid=$!
  if ! "$MWBENCH" wait --port "$port" --duration 15; then
    say "$kind did not start; log:"; tail -20 "$server_log" >&2
    stop_server
    return 1
  fi
}

alive() { # pid: running, not a zombie
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

# Stops the server. Sets server_died when it had exited by itself (a crash must not
# pass silently) or when it did not exit cleanly after SIGTERM.
server_died=""
stop_server() {
  local pid=$server_pid rc=0
  server_died=""
  [ -n "$pid" ] || return 0
  server_pid=""
  if ! alive "$pid"; then
    wait "$pid" 2>/dev/null || rc=$?
    server_died="exited_by_itself_status_$rc"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    say "server $pid still running 5 s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    server_died="hung_on_SIGTERM"
  fi
  wait "$pid" 2>/dev/null || rc=$?
  if [ -z "$server_died" ] && [ "$rc" -ne 0 ]; then server_died="status_${rc}_after_SIGTERM"; fi
}
trap 'stop_idle_holder; stop_server' EXIT
trap 'exit 130' INT TERM

# ---- scenarios ----
scenario_args() {
  case $1 in
    ramp)    echo "ramp --members $FANOUT_MEMBERS --publishers 1 --ramp-start 20 --ramp-step $RAMP_STEP --drain 2" ;;
    fanout)  echo "fanout --members $FANOUT_MEMBERS --publishers 1 --rate $FANOUT_RATE --duration $DURATION" ;;
    chat10)  echo "chat --rooms 100 --room-members 10 --msg-rate 10 --duration $DURATION" ;;
    chat1)   echo "chat --rooms 100 --room-members 10 --msg-rate 1 --duration $DURATION" ;;
    chat5)   echo "chat --rooms 100 --room-members 10 --msg-rate 5 --duration $DURATION" ;;
    hbdefault:*) echo "chat --rooms 100 --room-members 10 --msg-rate 5 --duration $HB_DEFAULT_DURATION $(inline_idle "$1")" ;;
    hb*:*)   echo "chat --rooms 100 --room-members 10 --msg-rate 5 --duration $HB_DURATION $(inline_idle "$1")" ;;
    idle)    echo "idle --conns $IDLE_N --duration 2 --sources 8" ;;
    connect) echo "connect --concurrency $CONNECT_CONCURRENCY --duration $DURATION" ;;
    *) say "unknown scenario '$1'"; exit 2 ;;
  esac
}

# The chat generator's own idle connections for hbS:N (IDLE_HOLDER=inline).
inline_idle() {
  [ "$IDLE_HOLDER" = inline ] && echo "--idle ${1#*:} --sources 8"
  return 0
}

# IDLE_HOLDER=process: holds hbS:N's N idle connections in a second generator process
# for the whole run, and waits until the server has them all (its open fds).
holder_pid=""
start_idle_holder() { # scenario port
  local n=${1#*:} hold fds
  case $1 in hbdefault:*) hold=$HB_DEFAULT_DURATION ;; *) hold=$HB_DURATION ;; esac
  hold=$((hold + 30)) # the chat's own set-up and drain
  taskset -c "$GEN_CPU" "$MWBENCH" idle --conns "$n" --duration "$hold" --sources 8 --port "$2" \
    --label idle-holder > "$OUT/idle-holder-$2.txt" 2>&1 &
  holder_pid=$!
  for _ in $(seq 600); do # at most 60 s
    fds=$(ls "/proc/$server_pid/fd" 2>/dev/null | wc -l)
    [ "$fds" -lt "$n" ] || return 0
    alive "$holder_pid" || break
    sleep 0.1
  done
  say "idle holder: the server got $fds of $n connections"
  return 1
}
stop_idle_holder() {
  [ -n "$holder_pid" ] || return 0
  kill "$holder_pid" 2>/dev/null || true
  wait "$holder_pid" 2>/dev/null || true
  holder_pid=""
}

# The heartbeat interval a scenario gives the servers (seconds; empty: their default).
scenario_heartbeat() {
  case $1 in hbdefault:*) ;; hb*:*) local h=${1%%:*}; echo "${h#hb}" ;; esac
}

# CPU busy (%) per core over one second while nothing of ours runs: other load on the
# machine makes every figure worse.
background_load() {
  local a b
  a=$(grep '^cpu[0-9]' /proc/stat)
  sleep 1
  b=$(grep '^cpu[0-9]' /proc/stat)
  paste <(echo "$a") <(echo "$b") | awk '{
    n = (NF - 2) / 2; busy = 0; all = 0
    for (i = 2; i <= n + 1; i++) { d = $(i + n + 1) - $i; all += d; if (i != 5 && i != 6) busy += d }
    printf "%s=%.0f%% ", $1, all ? 100 * busy / all : 0 }'
}

run_one() { # round kind scenario
  local round=$1 kind=$2 scen=$3 port out line
  port=$("$MWBENCH" freeport)
  start_server "$kind" "$port" "$(scenario_heartbeat "$scen")" || { echo "round=$round server=$kind run=$scen crashed=did_not_start" >> "$RESULTS"; return; }
  out=$OUT/r$round-${scen/:/-}-$kind.txt
  local holder_note=""
  case $scen in
    hb*:*) if [ "$IDLE_HOLDER" = process ]; then
             holder_note=" idle_holder=process idle_held=${scen#*:}"
             start_idle_holder "$scen" "$port" || holder_note=" idle_holder=process idle_held=short"
           fi ;;
  esac
  # shellcheck disable=SC2046
  taskset -c "$GEN_CPU" "$MWBENCH" $(scenario_args "$scen") --port "$port" --pid "$server_pid" \
    --label "$kind" $MWBENCH_ARGS > "$out" 2>&1 || true
  stop_idle_holder
  stop_server
  line=$(grep '^result ' "$out" | tail -1 || true)
  [ -n "$line" ] || line="result scenario=$scen label=$kind failed=no_result"
  line="$line$holder_note"
  [ -z "$server_died" ] || line="$line crashed=$server_died"
  echo "round=$round server=$kind run=$scen ${line#result }" >> "$RESULTS"
  grep -E '^(# (ramp|fanout|chat|idle|connect) |warning)' "$out" | grep -v 'connections joined in' |
    sed "s/^/  [$round $scen] /" >&2 || true
  if [ -n "$server_died" ]; then
    say "  [$round $scen] $kind: $server_died; log tail:"
    tail -20 "$server_log" | sed 's/^/    /' >&2
  fi
}

if [ -n "${COMMIT:-}" ]; then # a tree exported with git archive has no .git
  commit=$COMMIT
else
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD -- core lua apps 2>/dev/null || commit="$commit+dirty"
fi
jemalloc=$(ldd "$MOONWIRE" | grep -q jemalloc && echo yes || echo no)
{
  echo "# moonwire bench $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$commit build=$build_type jemalloc=$jemalloc"
  echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r), node $(node --version), nofile $nofile"
  [ -z "$UWS_PEER" ] || echo "# uws peer: $UWS_PEER"
  echo "# servers on CPU $SERVER_CPU, generator on CPU $GEN_CPU; rounds=$ROUNDS scenarios=\"$SCENARIOS\""
  echo "# moonwire config: ${BENCH_CONFIG#$ROOT/}"
} | tee "$OUT/header.txt" >&2

for round in $(seq "$ROUNDS"); do
  load=$(background_load)
  say "round $round/$ROUNDS: background load $load"
  echo "# round $round: background load before it $load" >> "$OUT/header.txt"
  order=$SERVERS
  # Alternate which server goes first, so that drift in the machine favours neither.
  if [ $((round % 2)) -eq 0 ]; then order=$(echo "$SERVERS" | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}'); fi
  for scen in $SCENARIOS; do
    for kind in $order; do
      run_one "$round" "$kind" "$scen"
    done
  done
done

echo >&2
cat "$OUT/header.txt"
node "$ROOT/tests/bench/table.js" "$RESULTS"
echo "(raw results: $RESULTS)"
