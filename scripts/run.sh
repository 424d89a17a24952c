#!/usr/bin/env bash
# `make run`: a worker in the foreground and, beside it, a modest demo load so money moves.
# KPAY_DEMO_RATE=0 turns the demo load off.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
faust=$here/.venv/bin/faust
rate=${KPAY_DEMO_RATE:-5}
cd "$here"

demo_pid=
if [ "$rate" != "0" ]; then
  "$faust" -A kpay generate --rate "$rate" --accounts 20 --duration 0 --quiet &
  demo_pid=$!
fi
stop_demo() { [ -z "$demo_pid" ] || kill "$demo_pid" 2>/dev/null || true; }
trap stop_demo EXIT
echo "KPay worker: http://${KPAY_WEB_HOST:-127.0.0.1}:${KPAY_WEB_PORT:-6066}  (Ctrl-C stops it)"
"$faust" -A kpay worker -l info
