#!/usr/bin/env bash
# Starts or stops a local AWS emulator on 127.0.0.1, with its state and log in .local/
# (ignored by git).
#   scripts/local-aws.sh start|stop|status [ministack|moto]
# ministack (port 4566) is the local target; moto (port 5000) is a second, independent
# emulator the tests also run the provisioner against.
set -euo pipefail
cd "$(dirname "$0")/.."

EMULATOR="${2:-ministack}"
case "$EMULATOR" in
  ministack)
    PORT="${MINISTACK_PORT:-4566}"
    HEALTH="http://127.0.0.1:$PORT/_ministack/health"
    BIN=.venv/bin/ministack
    ;;
  moto)
    PORT="${MOTO_PORT:-5000}"
    HEALTH="http://127.0.0.1:$PORT/moto-api/"
    BIN=.venv-moto/bin/moto_server
    ;;
  *) echo "unknown emulator $EMULATOR (ministack or moto)" >&2; exit 64 ;;
esac
STATE=".local/$EMULATOR"
PIDFILE="$STATE/$EMULATOR.pid"

healthy() { curl -fsS -o /dev/null --max-time 2 "$HEALTH"; }

case "${1:-}" in
  start)
    if healthy; then
      echo "$EMULATOR already answers on 127.0.0.1:$PORT"
      exit 0
    fi
    [ -x "$BIN" ] || { echo "$EMULATOR is not installed: run 'make deps'" >&2; exit 1; }
    mkdir -p "$STATE/state"
    if [ "$EMULATOR" = ministack ]; then
      # BIND_HOST keeps it on loopback; PERSIST_STATE keeps the local stack across restarts.
      BIND_HOST=127.0.0.1 GATEWAY_PORT="$PORT" PERSIST_STATE=1 STATE_DIR="$PWD/$STATE/state" \
        nohup "$BIN" >"$STATE/$EMULATOR.log" 2>&1 &
    else
      nohup "$BIN" -H 127.0.0.1 -p "$PORT" >"$STATE/$EMULATOR.log" 2>&1 &
    fi
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
      if healthy; then
        echo "$EMULATOR started on 127.0.0.1:$PORT (log: $STATE/$EMULATOR.log)"
        exit 0
      fi
      sleep 0.5
    done
    echo "$EMULATOR did not answer on $HEALTH within 30 s; see $STATE/$EMULATOR.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      kill "$(cat "$PIDFILE")"
      rm -f "$PIDFILE"
      echo "$EMULATOR stopped"
    else
      echo "no $EMULATOR started by this project is running"
    fi
    ;;
  status)
    if healthy; then echo "$EMULATOR answers on 127.0.0.1:$PORT"; else echo "$EMULATOR is not running"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status [ministack|moto]" >&2
    exit 64
    ;;
esac
