#!/usr/bin/env bash
# Patroni with its defaults (ttl 30, loop_wait 10, retry_timeout 10) on a
# one-member etcd: a leader and a streaming replica; the leader's node is
# lost (its Patroni killed with SIGKILL, then its server stopped with
# `pg_ctl stop -m immediate`), and the time to the first write on the
# promoted replica measured (see lib.sh). Needs patroni and etcd-server.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v patroni >/dev/null || fail "apt-get install patroni"
command -v etcd >/dev/null || fail "apt-get install etcd-server"

ETCD="" PATRONI1="" PATRONI2=""
cleanup() {
  stop_pid "$PATRONI1"
  stop_pid "$PATRONI2"
  stop_server "${DIR:-/nonexistent}/n1"
  stop_server "${DIR:-/nonexistent}/n2"
  stop_pid "$ETCD"
  finish
}
trap cleanup EXIT
trap 'exit 130' INT TERM

workdir patroni
read -r EC EP P1 P2 A1 A2 < <(ports 6)
spawn "$DIR/etcd.log" etcd --name peer --data-dir "$DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
  --listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
  --initial-cluster "peer=http://127.0.0.1:$EP" --initial-cluster-state new
ETCD=$SPAWNED
until_ok 30 "etcd answers" curl -sf "http://127.0.0.1:$EC/health"

for n in 1 2; do
  port=$P1 api=$A1; [ $n = 2 ] && port=$P2 api=$A2
  cat > "$DIR/n$n.yml" <<CONF
scope: peer
namespace: /peer/
name: n$n
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts: 127.0.0.1:$EC
bootstrap:
  dcs:
    postgresql:
      use_pg_rewind: true
  initdb:
    - auth: trust
postgresql:
  listen: 127.0.0.1:$port
  connect_address: 127.0.0.1:$port
  data_dir: $DIR/n$n
  bin_dir: $PGBIN
  pgpass: $DIR/pgpass$n
  authentication:
    superuser: {username: postgres}
    replication: {username: postgres}
    rewind: {username: postgres}
  parameters:
    unix_socket_directories: '$DIR'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
CONF
  chown postgres: "$DIR/n$n.yml"
done
spawn "$DIR/patroni1.log" patroni "$DIR/n1.yml"
PATRONI1=$SPAWNED
until_ok 90 "n1 leads" curl -sf "http://127.0.0.1:$A1/primary"
spawn "$DIR/patroni2.log" patroni "$DIR/n2.yml"
PATRONI2=$SPAWNED
until_ok 120 "n2 replicates" curl -sf "http://127.0.0.1:$A2/replica"
until_ok 60 "the replica streams" streaming "$P1"
sleep 21   # two HA loops with both members up

say "patroni: node loss (kill -9 Patroni, then pg_ctl stop -m immediate)"
t0=$(now_ns)
kill -9 "$PATRONI1"
PATRONI1=""
as_postgres "$PGBIN/pg_ctl" -D "$DIR/n1" stop -m immediate -w >/dev/null
measure patroni "$P2" "$t0"
