#!/usr/bin/env bash
# repmgr with its default timings (repmgrd on both nodes, failover =
# automatic): a primary and a streaming standby; the primary's server is
# stopped (`pg_ctl stop -m immediate`, repmgrd left running, as when
# PostgreSQL crashes) and the time to the first write on the promoted
# standby measured (see lib.sh). Needs postgresql-15-repmgr.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$PGBIN/repmgrd" ] || fail "apt-get install postgresql-15-repmgr"

cleanup() {
  local f
  for f in "${DIR:-/nonexistent}"/repmgrd*.pid; do [ -f "$f" ] && stop_pid "$(cat "$f")"; done
  stop_server "${DIR:-/nonexistent}/n1"
  stop_server "${DIR:-/nonexistent}/n2"
  finish
}
trap cleanup EXIT
trap 'exit 130' INT TERM

workdir repmgr
read -r P1 P2 < <(ports 2)
for n in 1 2; do
  port=$P1; [ $n = 2 ] && port=$P2
  cat > "$DIR/n$n.conf" <<CONF
node_id=$n
node_name='n$n'
conninfo='host=127.0.0.1 port=$port user=postgres dbname=postgres connect_timeout=2'
data_directory='$DIR/n$n'
pg_bindir='$PGBIN'
log_file='$DIR/repmgrd$n.log'
repmgrd_pid_file='$DIR/repmgrd$n.pid'
failover=automatic
promote_command='$PGBIN/repmgr standby promote -f $DIR/n$n.conf --log-to-file'
follow_command='$PGBIN/repmgr standby follow -f $DIR/n$n.conf --log-to-file --upstream-node-id=%n'
CONF
  chown postgres: "$DIR/n$n.conf"
done

as_postgres "$PGBIN/initdb" -D "$DIR/n1" -U postgres -A trust >/dev/null || fail initdb
cat >> "$DIR/n1/postgresql.conf" <<CONF
port = $P1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_preload_libraries = 'repmgr'
wal_log_hints = on
CONF
as_postgres "$PGBIN/pg_ctl" -D "$DIR/n1" -l "$DIR/n1.log" -w start >/dev/null || fail "start the primary"
as_postgres "$PGBIN/repmgr" -f "$DIR/n1.conf" primary register >>"$DIR/setup.log" 2>&1 || fail "primary register"
as_postgres "$PGBIN/repmgr" -h 127.0.0.1 -p "$P1" -U postgres -d postgres -f "$DIR/n2.conf" \
  standby clone >>"$DIR/setup.log" 2>&1 || fail "standby clone"
echo "port = $P2" >> "$DIR/n2/postgresql.conf"
as_postgres "$PGBIN/pg_ctl" -D "$DIR/n2" -l "$DIR/n2.log" -w start >/dev/null || fail "start the standby"
as_postgres "$PGBIN/repmgr" -f "$DIR/n2.conf" standby register >>"$DIR/setup.log" 2>&1 || fail "standby register"
as_postgres "$PGBIN/repmgrd" -f "$DIR/n1.conf" >>"$DIR/setup.log" 2>&1 || fail "repmgrd n1"
as_postgres "$PGBIN/repmgrd" -f "$DIR/n2.conf" >>"$DIR/setup.log" 2>&1 || fail "repmgrd n2"
until_ok 60 "the standby streams" streaming "$P1"
until_ok 60 "repmgrd on the standby monitors" grep -q 'monitoring connection to upstream node' "$DIR/repmgrd2.log"
sleep 3

say "repmgr: stopping the primary's server (pg_ctl stop -m immediate)"
t0=$(now_ns)
as_postgres "$PGBIN/pg_ctl" -D "$DIR/n1" stop -m immediate -w >/dev/null
measure repmgr "$P2" "$t0"
