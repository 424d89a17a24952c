#!/usr/bin/env bash
# `make run`: a worker in the foreground and, beside it, a modest demo load so money moves.
# KPAY_DEMO_RATE=0 turns the demo load off. The first run creates a local operator token
# (kept in .kpay-token, mode 0600) and every run prints how to use it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
faust=$here/.venv/bin/faust
rate=${KPAY_DEMO_RATE:-5}
tokens=${KPAY_TOKENS_FILE:-kpay-tokens.json}
cd "$here"

if [ ! -s .kpay-token ] || [ ! -s "$tokens" ]; then
  (umask 077 && "$faust" -A kpay token create --role operator --name local-operator \
    | tail -n 1 > .kpay-token)
fi

# The demo load is the worker's own (the console's Load tab shows and stops it): asked for once
# the worker is ready, it ends with the worker.
if [ "$rate" != "0" ]; then
  (KPAY_TOKEN=$(cat .kpay-token) && export KPAY_TOKEN &&
    "$faust" -A kpay ready --timeout 300 >/dev/null &&
    "$faust" -A kpay load start --rate "$rate" --accounts 20 --seconds 86400 >/dev/null) &
fi
url="http://${KPAY_WEB_HOST:-127.0.0.1}:${KPAY_WEB_PORT:-6066}"
cat <<MSG
KPay worker: $url  (Ctrl-C stops it)
Console: $url/  (sign in with the token in .kpay-token); API: $url/docs
Local operator token in .kpay-token; in another shell:
  export KPAY_TOKEN=\$(cat .kpay-token)
  curl -H "Authorization: Bearer \$KPAY_TOKEN" $url/pipeline
MSG
"$faust" -A kpay worker -l info
