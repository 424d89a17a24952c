#!/usr/bin/env bash
# The whole suite against a throwaway broker on a free port with its own data dir, which is
# stopped and removed however the tests end. Arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=$here/.venv/bin/python

port=$("$python" -c 'from kpay_faust.ports import free_port_pair; print(free_port_pair())')
dir=$(mktemp -d "${TMPDIR:-/tmp}/kpay-test-broker.XXXXXX")
cleanup() {
  "$here/scripts/broker.sh" stop "$port" "$dir" || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The console's browser tests drive Debian's chromium (no browser download). Under CI, as root,
# it is installed when missing; elsewhere those tests are skipped without it.
if [ -z "${KPAY_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: no chromium; the console's browser tests are skipped (apt-get install chromium)" >&2
  fi
fi

"$here/scripts/broker.sh" start "$port" "$dir"
cd "$here"
KPAY_TEST_BROKER="kafka://127.0.0.1:$port" "$python" -m pytest "$@"
