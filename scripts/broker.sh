#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) without Docker.
#
#   scripts/broker.sh start [PORT] [DIR]   start in the background, wait until it accepts connections
#   scripts/broker.sh stop  [PORT] [DIR]   stop the node recorded in DIR/broker.pid
#   scripts/broker.sh status [PORT] [DIR]
#   scripts/broker.sh launch|wait [PORT] [DIR]   start without waiting; wait (for nodes of a
#                                          cluster, which accept connections once a quorum is up)
#
# One node of a cluster (scripts/cluster.sh) takes KPAY_BROKER_NODE_ID, KPAY_BROKER_VOTERS
# (the controller quorum), KPAY_BROKER_CLUSTER_ID, and KPAY_BROKER_REPLICAS / _MIN_ISR (the
# defaults for every topic, the offsets and the transaction logs); alone it is node 1 of 1.
#
# With KPAY_BROKER_SASL=1 it also listens with SASL (PLAIN and SCRAM-SHA-256) on PORT+2, for
# the user kpay / kpay-secret (tests of KPAY_KAFKA_* settings); PORT stays PLAINTEXT.
#
# The jars come from Maven Central (broker/pom.xml); Maven's local repository caches them, and
# the resolved classpath is kept in .kafka/classpath.txt. PORT defaults to 9092, DIR to .kafka/run-PORT.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-status}
port=${2:-${KPAY_BROKER_PORT:-9092}}
dir=${3:-$here/.kafka/run-$port}
controller_port=$((port + 1))
sasl_port=$((port + 2))
sasl=${KPAY_BROKER_SASL:-0}
classpath_file=$here/.kafka/classpath.txt
pidfile=$dir/broker.pid
heap=${KPAY_BROKER_HEAP:-1g}
node_id=${KPAY_BROKER_NODE_ID:-1}
voters=${KPAY_BROKER_VOTERS:-1@127.0.0.1:$controller_port}
replicas=${KPAY_BROKER_REPLICAS:-1}
min_isr=${KPAY_BROKER_MIN_ISR:-1}
# A KRaft cluster id is 16 bytes, base64url: by default a stable one derived from the port.
cluster_id=${KPAY_BROKER_CLUSTER_ID:-$(printf 'kpay-local-%05d' "$port" | base64 | tr '+/' '-_' | cut -c1-22)}

log() { echo "broker: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

resolve_classpath() {
  if [ ! -s "$classpath_file" ] || [ "$here/broker/pom.xml" -nt "$classpath_file" ]; then
    log "resolving Apache Kafka jars from Maven Central (cached after the first run)"
    mkdir -p "$(dirname "$classpath_file")"
    mvn -q -B -f "$here/broker/pom.xml" dependency:build-classpath \
      -Dmdep.outputFile="$classpath_file" >&2
  fi
}

write_config() {
  mkdir -p "$dir/data" "$dir/logs"
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local sasl_props=""
  if [ "$sasl" = 1 ]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$sasl_port"
    advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$sasl_port"
    sasl_props="sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kpay=\"kpay-secret\";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  fi
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
$sasl_props
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=8
default.replication.factor=$replicas
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=4
min.insync.replicas=$min_isr
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=6000
auto.create.topics.enable=false
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.threads=1
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
PROPS
}

java_cmd() {
  exec java -Xms256m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Dlog4j.configuration="file:$here/broker/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$(cat "$classpath_file")" "$@"
}

launch() {
  if pid=$(running_pid); then
    log "already running on 127.0.0.1:$port (pid $pid)"
    return 0
  fi
  if port_open "$port"; then
    log "something already listens on 127.0.0.1:$port; using it"
    return 0
  fi
  command -v java >/dev/null || { log "java not found: install a JDK 17+"; exit 1; }
  resolve_classpath
  write_config
  if [ ! -f "$dir/data/meta.properties" ]; then
    local scram=()
    [ "$sasl" = 1 ] && scram=(--add-scram 'SCRAM-SHA-256=[name=kpay,password=kpay-secret]')
    (java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      --ignore-formatted "${scram[@]}") >"$dir/logs/format.log" 2>&1 \
      || { log "formatting storage failed:"; cat "$dir/logs/format.log" >&2; exit 1; }
  fi
  java_cmd kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

wait_ready() {
  for _ in $(seq 1 480); do
    if port_open "$port"; then
      log "running on 127.0.0.1:$port (pid $(cat "$pidfile" 2>/dev/null || echo '?'), data in $dir)"
      return 0
    fi
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "exited during start-up; last lines of its log:"
      tail -n 30 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 2>/dev/null || true
      rm -f "$pidfile"
      exit 1
    fi
    sleep 0.25
  done
  log "did not accept connections within 120 s; see $dir/logs"
  exit 1
}

start() {
  launch
  wait_ready
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    log "not running (no live pid in $pidfile)"
    rm -f "$pidfile"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped (pid $pid)"; return 0; }
    sleep 0.25
  done
  log "pid $pid did not stop within 30 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "$cmd" in
  start) start ;;
  launch) launch ;;
  wait) wait_ready ;;
  stop) stop ;;
  status)
    if pid=$(running_pid); then echo "running on 127.0.0.1:$port (pid $pid)"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status|launch|wait [PORT] [DIR]" >&2; exit 2 ;;
esac
