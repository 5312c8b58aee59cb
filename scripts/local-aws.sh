#!/usr/bin/env bash
# Starts or stops a local AWS emulator on 127.0.0.1 behind the realism proxy (tests/realism,
# docs/realism.md), with state and logs in .local/ (ignored by git).
#   scripts/local-aws.sh start|stop|status [ministack|moto]
# ministack is the local target: clients use the proxy on 4566, ministack itself listens on
# 4567. moto is a second, independent emulator the tests also run the provisioner against:
# proxy on 5000, moto on 5001. The proxy validates every signed request against botocore's
# models and, in test mode, adds AWS's timing and faults.
#
# Environment:
#   MINISTACK_PORT (4566), MINISTACK_UPSTREAM_PORT (4567), MOTO_PORT (5000), MOTO_UPSTREAM_PORT (5001)
#   LOCAL_AWS_INSTANCE  the instance's name (default: the emulator's): its state in .local/<name>/,
#                       its proxy's call log .local/realism/<name>.calls.jsonl; a second instance on
#                       other ports needs a name of its own (`make test` starts one for the tests
#                       that change the realism layer's settings)
#   REALISM_MODE        validate (default; what `make local` uses), test (validation + timing +
#                       faults) or off (pure pass-through)
#   REALISM_SEED, REALISM_TIME_SCALE, REALISM_FAULT_RATE   the proxy's knobs (default: random
#                       seed; in test mode time scale 0.02 and fault rate 0.05)
#   REALISM_CONSTRAINED_ZONES   zones of the emulated account that offer no interface endpoint
#                       service and no DB instance class, comma-separated (default us-east-1a: as in
#                       real accounts, a zone name is no promise; `provision` must choose zones)
#   REALISM_SCALES      per-duration scale factors replacing the time scale, e.g.
#                       iam_propagation=0.5,ec2_read_after_create=1
#   REALISM_ARGS        more arguments for `python -m realism` (e.g. --duration NAME=LO-HI)
# `start` on a proxy that already runs applies the REALISM_* knobs that are set to it.
set -euo pipefail
cd "$(dirname "$0")/.."

EMULATOR="${2:-ministack}"
case "$EMULATOR" in
  ministack)
    PORT="${MINISTACK_PORT:-4566}"
    UPSTREAM_PORT="${MINISTACK_UPSTREAM_PORT:-4567}"
    UPSTREAM_HEALTH="http://127.0.0.1:$UPSTREAM_PORT/_ministack/health"
    BIN=.venv/bin/ministack
    # ministack runs through this launcher: its own entry point with the CloudFormation resource
    # types ministack lacks registered first (tests/local/ministack_cfn_extensions.py).
    LAUNCH=(.venv/bin/python tests/local/ministack_with_extensions.py)
    ;;
  moto)
    PORT="${MOTO_PORT:-5000}"
    UPSTREAM_PORT="${MOTO_UPSTREAM_PORT:-5001}"
    UPSTREAM_HEALTH="http://127.0.0.1:$UPSTREAM_PORT/moto-api/"
    BIN=.venv-moto/bin/moto_server
    ;;
  *) echo "unknown emulator $EMULATOR (ministack or moto)" >&2; exit 64 ;;
esac
PROXY_HEALTH="http://127.0.0.1:$PORT/_realism/health"
REALISM_PY=.venv-realism/bin/python
INSTANCE="${LOCAL_AWS_INSTANCE:-$EMULATOR}"
STATE=".local/$INSTANCE"
PIDFILE="$STATE/$EMULATOR.pid"
PROXY_PIDFILE="$STATE/realism.pid"
REALISM_LOGS=".local/realism"

upstream_healthy() { curl -fsS -o /dev/null --max-time 2 "$UPSTREAM_HEALTH" 2>/dev/null; }
proxy_healthy() { curl -fsS -o /dev/null --max-time 2 "$PROXY_HEALTH" 2>/dev/null; }
healthy() { proxy_healthy && upstream_healthy; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The REALISM_* knobs that are set, as a JSON object for PUT /_realism/config.
knobs_json() {
  local parts=()
  [ -n "${REALISM_MODE:-}" ] && parts+=("\"mode\": \"$REALISM_MODE\"")
  [ -n "${REALISM_SEED:-}" ] && parts+=("\"seed\": $REALISM_SEED")
  [ -n "${REALISM_TIME_SCALE:-}" ] && parts+=("\"time_scale\": $REALISM_TIME_SCALE")
  [ -n "${REALISM_FAULT_RATE:-}" ] && parts+=("\"fault_rate\": $REALISM_FAULT_RATE")
  if [ -n "${REALISM_CONSTRAINED_ZONES+set}" ]; then
    local zones
    zones="$(echo "$REALISM_CONSTRAINED_ZONES" | sed -e 's/[^,][^,]*/"&"/g')"
    parts+=("\"constrained_zones\": [$zones]")
  fi
  if [ -n "${REALISM_SCALES:-}" ]; then
    local scales
    scales="$(echo "$REALISM_SCALES" | sed -e 's/\([a-z0-9_]*\)=\([0-9.]*\)/"\1": \2/g')"
    parts+=("\"scales\": {$scales}")
  fi
  local IFS=,
  echo "{${parts[*]}}"
}

stop_pid() {  # pidfile, what
  if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then
    kill "$(cat "$1")"
    for _ in $(seq 1 20); do kill -0 "$(cat "$1")" 2>/dev/null || break; sleep 0.25; done
    rm -f "$1"
    echo "$2 stopped"
  else
    rm -f "$1"
    echo "no $2 started by this project is running"
  fi
}

case "${1:-}" in
  start)
    if healthy; then
      knobs="$(knobs_json)"
      if [ "$knobs" != "{}" ]; then
        curl -fsS -o /dev/null --max-time 5 -X PUT -H 'Content-Type: application/json' \
          --data "$knobs" "http://127.0.0.1:$PORT/_realism/config"
      fi
      mode="$(curl -fsS --max-time 2 "http://127.0.0.1:$PORT/_realism/config" | grep -o '"mode": *"[a-z]*"' || true)"
      echo "$EMULATOR already answers on 127.0.0.1:$PORT (realism proxy, $mode)"
      exit 0
    fi
    [ -x "$BIN" ] || { echo "$EMULATOR is not installed: run 'make deps'" >&2; exit 1; }
    [ -x "$REALISM_PY" ] || { echo "the realism proxy is not installed: run 'make deps'" >&2; exit 1; }
    if ! proxy_healthy && port_taken "$PORT"; then
      echo "127.0.0.1:$PORT is taken by a process that is not the realism proxy (an emulator started by" \
           "an older version of this script? stop it with: $0 stop $EMULATOR)" >&2
      exit 1
    fi
    mkdir -p "$STATE/state" "$REALISM_LOGS"
    if ! upstream_healthy; then
      if port_taken "$UPSTREAM_PORT"; then
        echo "127.0.0.1:$UPSTREAM_PORT is taken by a process that is not $EMULATOR" >&2; exit 1
      fi
      if [ "$EMULATOR" = ministack ]; then
        # BIND_HOST keeps it on loopback; PERSIST_STATE keeps the local stack across restarts;
        # AWS_ENDPOINT_URL makes the Lambda functions it runs call AWS through the proxy.
        BIND_HOST=127.0.0.1 GATEWAY_PORT="$UPSTREAM_PORT" PERSIST_STATE=1 STATE_DIR="$PWD/$STATE/state" \
          AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" \
          nohup "${LAUNCH[@]}" >"$STATE/$EMULATOR.log" 2>&1 &
      else
        nohup "$BIN" -H 127.0.0.1 -p "$UPSTREAM_PORT" >"$STATE/$EMULATOR.log" 2>&1 &
      fi
      echo $! >"$PIDFILE"
      for _ in $(seq 1 60); do upstream_healthy && break; sleep 0.5; done
      if ! upstream_healthy; then
        echo "$EMULATOR did not answer on $UPSTREAM_HEALTH within 30 s; see $STATE/$EMULATOR.log" >&2
        exit 1
      fi
    fi
    if ! proxy_healthy; then
      args=(--listen "127.0.0.1:$PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT" --name "$INSTANCE"
            --log-dir "$REALISM_LOGS" --cache-dir "$REALISM_LOGS/cache" --mode "${REALISM_MODE:-validate}")
      [ -n "${REALISM_SEED:-}" ] && args+=(--seed "$REALISM_SEED")
      [ -n "${REALISM_TIME_SCALE:-}" ] && args+=(--time-scale "$REALISM_TIME_SCALE")
      [ -n "${REALISM_FAULT_RATE:-}" ] && args+=(--fault-rate "$REALISM_FAULT_RATE")
      IFS=, read -r -a zones <<<"${REALISM_CONSTRAINED_ZONES-us-east-1a}"
      for zone in "${zones[@]}"; do args+=(--constrained-zone "$zone"); done
      IFS=, read -r -a scales <<<"${REALISM_SCALES:-}"
      for scale in "${scales[@]}"; do args+=(--scale "$scale"); done
      # shellcheck disable=SC2206
      [ -n "${REALISM_ARGS:-}" ] && args+=(${REALISM_ARGS})
      PYTHONPATH="$PWD/tests/realism" nohup "$REALISM_PY" -m realism "${args[@]}" >"$STATE/realism.log" 2>&1 &
      echo $! >"$PROXY_PIDFILE"
      for _ in $(seq 1 60); do proxy_healthy && break; sleep 0.5; done
      if ! proxy_healthy; then
        echo "the realism proxy did not answer on $PROXY_HEALTH within 30 s; see $STATE/realism.log" >&2
        exit 1
      fi
    fi
    echo "$EMULATOR started on 127.0.0.1:$UPSTREAM_PORT behind the realism proxy on 127.0.0.1:$PORT" \
         "($(grep -m 1 '^realism ' "$STATE/realism.log" | sed -e 's/.*; //')); logs: $STATE/$EMULATOR.log, $STATE/realism.log," \
         "$REALISM_LOGS/$INSTANCE.calls.jsonl"
    ;;
  stop)
    stop_pid "$PROXY_PIDFILE" "realism proxy of $EMULATOR"
    stop_pid "$PIDFILE" "$EMULATOR"
    ;;
  status)
    up=0
    if proxy_healthy; then echo "realism proxy answers on 127.0.0.1:$PORT"; else echo "realism proxy is not running on 127.0.0.1:$PORT"; up=1; fi
    if upstream_healthy; then echo "$EMULATOR answers on 127.0.0.1:$UPSTREAM_PORT"; else echo "$EMULATOR is not running on 127.0.0.1:$UPSTREAM_PORT"; up=1; fi
    exit $up
    ;;
  *)
    echo "usage: $0 start|stop|status [ministack|moto]" >&2
    exit 64
    ;;
esac
