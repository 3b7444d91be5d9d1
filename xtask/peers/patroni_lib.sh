# Patroni on a one-member etcd, shared by patroni.sh (failover) and
# patroni_revisions.sh (etcd revisions per second): `patroni_up N` starts
# etcd and N Patroni members with Patroni's defaults (ttl 30, loop_wait 10,
# retry_timeout 10), the first the leader, the others streaming replicas.
# Sets EC (etcd's client port), PG[i] and API[i] (member i's PostgreSQL
# and REST ports, from 1), PATRONI[i] (its PID) and ETCD. Source lib.sh
# first; call `patroni_down` from the EXIT trap.
command -v patroni >/dev/null || fail "apt-get install patroni"
command -v etcd >/dev/null || fail "apt-get install etcd-server"

ETCD="" EC=""
declare -a PATRONI=() PG=() API=()

patroni_down() {
  local i
  for i in "${!PATRONI[@]}"; do stop_pid "${PATRONI[$i]}"; done
  for i in "${!PG[@]}"; do stop_server "${DIR:-/nonexistent}/n$i"; done
  stop_pid "$ETCD"
}

# patroni_up N: etcd and N members, up and streaming (see above).
patroni_up() {
  local n=$1 i ep
  read -r EC ep < <(ports 2)
  spawn "$DIR/etcd.log" etcd --name peer --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
    --listen-peer-urls "http://127.0.0.1:$ep" --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
    --initial-cluster "peer=http://127.0.0.1:$ep" --initial-cluster-state new
  ETCD=$SPAWNED
  until_ok 30 "etcd answers" curl -sf "http://127.0.0.1:$EC/health"
  for i in $(seq "$n"); do
    read -r "PG[$i]" "API[$i]" < <(ports 2)
    cat > "$DIR/n$i.yml" <<CONF
scope: peer
namespace: /peer/
name: n$i
restapi:
  listen: 127.0.0.1:${API[$i]}
  connect_address: 127.0.0.1:${API[$i]}
etcd3:
  hosts: 127.0.0.1:$EC
# Never the host's /dev/watchdog (Patroni's default mode is automatic): a
# leader killed by the benchmark would leave it counting to a reset.
watchdog:
  mode: 'off'
bootstrap:
  dcs:
    postgresql:
      use_pg_rewind: true
  initdb:
    - auth: trust
postgresql:
  listen: 127.0.0.1:${PG[$i]}
  connect_address: 127.0.0.1:${PG[$i]}
  data_dir: $DIR/n$i
  bin_dir: $PGBIN
  pgpass: $DIR/pgpass$i
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
    chown postgres: "$DIR/n$i.yml"
  done
  spawn "$DIR/patroni1.log" patroni "$DIR/n1.yml"
  PATRONI[1]=$SPAWNED
  until_ok 90 "n1 leads" curl -sf "http://127.0.0.1:${API[1]}/primary"
  for i in $(seq 2 "$n"); do
    spawn "$DIR/patroni$i.log" patroni "$DIR/n$i.yml"
    PATRONI[$i]=$SPAWNED
    until_ok 120 "n$i replicates" curl -sf "http://127.0.0.1:${API[$i]}/replica"
  done
  until_ok 60 "the replicas stream" streaming "${PG[1]}" "$((n - 1))"
}
