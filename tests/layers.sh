#!/usr/bin/env bash
# layers.sh - checks that core/ is layered: every C file lives in a layer's folder, and
# includes its own layer's headers or a lower layer's, always by their layer-named path
# ("net/conn.h", with core/ as the include root), never a higher layer's.
#
# The layers, lowest first (README.md, "Layout"):
#   base   buffers, maps, logging, UTF-8, JSON, config, the shared state (context.h)
#   redis  the Redis client (single node and Cluster)
#   store  the store: values, lists, hashes, timed queues
#   net    connections, send queues, sessions, WebSocket, the listener, heartbeats,
#          admission and identity; what a transport calls on the server (entry.h)
#   rooms  rooms, presence, typing, history, inboxes, and the broker and cluster
#          registry that carry them between nodes
#   lua    Lua states and handlers, hot reload, the watchdog, the moonwire.* modules
#   http   plain HTTP, the HTTP API, the admin page, /metrics, the SSE fallback
#   server the process: the loop, startup and shutdown, workers, main, `moonwire test`
#
# Usage: tests/layers.sh [CORE_DIR]   (default: core/ next to this script's tests/)
#        tests/layers.sh --selftest CORE_DIR   (the check fails on an upward include)
# Prints one line per violation, as FILE:LINE: why, and exits 1 if there is any.
set -u
LAYERS=(base redis store net rooms lua http server)

# --selftest CORE_DIR: the check must fail on a copy of CORE_DIR where a file of the
# lowest layer includes a header of the highest, naming that file and line.
if [ "${1:-}" = --selftest ]; then
    [ -d "${2:-}" ] || { echo "layers.sh --selftest: no directory ${2:-}" >&2; exit 2; }
    tmp=$(mktemp -d) || exit 2
    trap 'rm -rf "$tmp"' EXIT
    cp -r "$2" "$tmp/core"
    victim="$tmp/core/base/buf.c"
    n=$(($(wc -l < "$victim") + 1))
    echo '#include "server/server.h"' >> "$victim"
    out=$(bash "$0" "$tmp/core"); rc=$?
    want="core/base/buf.c:$n: includes \"server/server.h\" from a higher layer"
    if [ "$rc" -eq 1 ] && [[ "$out" == *"$want"* ]]; then
        echo "layers.sh --selftest: the upward include was caught: $want"
        exit 0
    fi
    echo "layers.sh --selftest: expected exit 1 and \"$want\", got exit $rc:"
    echo "$out"
    exit 1
fi

core=${1:-$(cd "$(dirname "$0")/.." && pwd)/core}
[ -d "$core" ] || { echo "layers.sh: no directory $core" >&2; exit 2; }

rank() { # rank of layer $1, or -1
    local i
    for i in "${!LAYERS[@]}"; do [ "${LAYERS[$i]}" = "$1" ] && { echo "$i"; return; }; done
    echo -1
}

bad=0
nfiles=0
while IFS= read -r -d '' f; do
    rel=${f#"$core"/}
    nfiles=$((nfiles + 1))
    layer=${rel%%/*}
    if [ "$layer" = "$rel" ] || [ "${rel#*/}" != "${rel##*/}" ] || [ "$(rank "$layer")" -lt 0 ]; then
        echo "core/$rel:1: not in a layer's folder (${LAYERS[*]})"
        bad=1
        continue
    fi
    mine=$(rank "$layer")
    # `#include "..."` lines with their numbers; <...> includes are system headers.
    while IFS=: read -r line inc; do
        inc=${inc#*\"}; inc=${inc%%\"*}
        to=${inc%%/*}
        if [ "$to" = "$inc" ]; then
            echo "core/$rel:$line: includes \"$inc\" without its layer (write \"LAYER/$inc\")"
            bad=1
        elif [ ! -f "$core/$inc" ]; then
            echo "core/$rel:$line: includes \"$inc\", which is not in core/"
            bad=1
        elif [ "$(rank "$to")" -gt "$mine" ]; then
            echo "core/$rel:$line: includes \"$inc\" from a higher layer ($to is above $layer: ${LAYERS[*]})"
            bad=1
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done < <(find "$core" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

if [ "$nfiles" -eq 0 ]; then
    echo "layers.sh: no C files under $core" >&2
    exit 2
fi
if [ "$bad" -ne 0 ]; then
    echo "layers.sh: core/ breaks its layering (lowest first: ${LAYERS[*]})"
    exit 1
fi
echo "layers.sh: $nfiles files, layers in order: ${LAYERS[*]}"
