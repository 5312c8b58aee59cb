#!/usr/bin/env bash
# Starts or stops the local AWS emulator (ministack) on 127.0.0.1, with its state and log in
# .local/ (ignored by git). Usage: scripts/local-aws.sh start|stop|status
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${MINISTACK_PORT:-4566}"
STATE=.local/ministack
PIDFILE="$STATE/ministack.pid"
HEALTH="http://127.0.0.1:$PORT/_ministack/health"

healthy() { curl -fsS -o /dev/null --max-time 2 "$HEALTH"; }

case "${1:-}" in
  start)
    if healthy; then
      echo "ministack already answers on 127.0.0.1:$PORT"
      exit 0
    fi
    [ -x .venv/bin/ministack ] || { echo "ministack is not installed: run 'make deps'" >&2; exit 1; }
    mkdir -p "$STATE/state"
    # BIND_HOST keeps it on loopback; PERSIST_STATE keeps the local stack across restarts.
    BIND_HOST=127.0.0.1 GATEWAY_PORT="$PORT" PERSIST_STATE=1 STATE_DIR="$PWD/$STATE/state" \
      nohup .venv/bin/ministack >"$STATE/ministack.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
      if healthy; then
        echo "ministack started on 127.0.0.1:$PORT (log: $STATE/ministack.log)"
        exit 0
      fi
      sleep 0.5
    done
    echo "ministack did not answer on $HEALTH within 30 s; see $STATE/ministack.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      kill "$(cat "$PIDFILE")"
      rm -f "$PIDFILE"
      echo "ministack stopped"
    else
      echo "no ministack started by this project is running"
    fi
    ;;
  status)
    if healthy; then echo "ministack answers on 127.0.0.1:$PORT"; else echo "ministack is not running"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 64
    ;;
esac
