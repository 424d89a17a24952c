#!/usr/bin/env bash
# Local three-node Apache Kafka cluster (KRaft; every node a broker and a controller), for
# trying KPay as it runs in production: replication factor 3, min in-sync replicas 2.
#
#   scripts/cluster.sh start [BASE]        nodes 1-3 on 127.0.0.1:BASE, BASE+10, BASE+20
#                                          (controllers on the port after each); default 19092
#   scripts/cluster.sh stop [BASE]
#   scripts/cluster.sh status [BASE]
#   scripts/cluster.sh kill NODE [BASE]    SIGKILL one node (what the broker-loss test does)
#   scripts/cluster.sh start-node NODE [BASE]
#
# Data and logs: .kafka/cluster-BASE/node-N. Bootstrap: 127.0.0.1:BASE,127.0.0.1:BASE+10,...
# Workers need KPAY_REPLICATION_FACTOR=3 KPAY_MIN_INSYNC_REPLICAS=2 (`make cluster` prints it).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-status}
if [ "$cmd" = kill ] || [ "$cmd" = start-node ]; then
  node=${2:?node number 1-3}
  base=${3:-${KPAY_CLUSTER_PORT:-19092}}
else
  base=${2:-${KPAY_CLUSTER_PORT:-19092}}
fi
root=${KPAY_CLUSTER_DIR:-$here/.kafka/cluster-$base}

port_of() { echo $((base + 10 * ($1 - 1))); }
dir_of() { echo "$root/node-$1"; }
voters="1@127.0.0.1:$(($(port_of 1) + 1)),2@127.0.0.1:$(($(port_of 2) + 1)),3@127.0.0.1:$(($(port_of 3) + 1))"
cluster_id=$(printf 'kpay-cluster-%05d' "$base" | base64 | tr '+/' '-_' | cut -c1-22)

node_env() {
  env KPAY_BROKER_NODE_ID="$1" KPAY_BROKER_VOTERS="$voters" KPAY_BROKER_CLUSTER_ID="$cluster_id" \
    KPAY_BROKER_REPLICAS=3 KPAY_BROKER_MIN_ISR=2 KPAY_BROKER_HEAP="${KPAY_BROKER_HEAP:-512m}" \
    "$here/scripts/broker.sh" "$2" "$(port_of "$1")" "$(dir_of "$1")"
}

bootstrap() { echo "127.0.0.1:$(port_of 1),127.0.0.1:$(port_of 2),127.0.0.1:$(port_of 3)"; }

case "$cmd" in
  start)
    for n in 1 2 3; do node_env "$n" launch; done
    for n in 1 2 3; do node_env "$n" wait; done
    echo "cluster: KPAY_BROKER=kafka://$(bootstrap) KPAY_REPLICATION_FACTOR=3 KPAY_MIN_INSYNC_REPLICAS=2" >&2 ;;
  stop)  # all at once: a node stopped after the others waits for a quorum that is gone
    for n in 1 2 3; do node_env "$n" stop & done
    wait ;;
  status) for n in 1 2 3; do node_env "$n" status || true; done ;;
  kill)
    pid=$(cat "$(dir_of "$node")/broker.pid")
    kill -9 "$pid" && rm -f "$(dir_of "$node")/broker.pid"
    echo "cluster: killed node $node (pid $pid)" >&2 ;;
  start-node) node_env "$node" launch && node_env "$node" wait ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|status|bootstrap [BASE] | kill|start-node NODE [BASE]" >&2; exit 2 ;;
esac
