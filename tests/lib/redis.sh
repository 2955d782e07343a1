# tests/lib/redis.sh: start and stop a private redis-server for a test.
# Source it, then:
#   redis_start DIR        start on a free 127.0.0.1 port with AOF in DIR;
#                          sets REDIS_PORT, REDIS_URL, REDIS_PID
#   redis_stop             SHUTDOWN (AOF flushed), wait for the process
#   redis_kill             kill -9 (no flush)
#   redis_restart          stop, then start again on the same port and dir
#   rcli ARGS...           redis-cli against it
# The server is stopped by redis_cleanup (call it from the test's EXIT trap).

redis_free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

redis_start() {
    REDIS_DIR=$1
    mkdir -p "$REDIS_DIR"
    [ -n "${REDIS_PORT:-}" ] || REDIS_PORT=$(redis_free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
        --appendfsync always --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" \
        --daemonize no >/dev/null 2>&1 &
    REDIS_PID=$!
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    for _ in $(seq 1 100); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    echo "redis-server did not start on port $REDIS_PORT:" >&2
    cat "$REDIS_DIR/redis.log" >&2
    return 1
}

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

redis_stop() {
    [ -n "${REDIS_PID:-}" ] || return 0
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
    REDIS_PID=
}

redis_kill() {
    [ -n "${REDIS_PID:-}" ] || return 0
    kill -9 "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
    REDIS_PID=
}

redis_restart() {
    redis_stop
    redis_start "$REDIS_DIR"
}

redis_cleanup() {
    redis_kill
}
