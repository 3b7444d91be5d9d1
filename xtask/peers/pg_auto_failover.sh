#!/usr/bin/env bash
# pg_auto_failover with its defaults: a monitor, a primary and a secondary;
# the primary's server is stopped (`pg_ctl stop -m immediate`, its keeper
# left running, as when PostgreSQL crashes), and the time to the first
# write on the promoted secondary measured (see lib.sh). Needs
# postgresql-15-auto-failover and pg-auto-failover-cli.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v pg_autoctl >/dev/null || fail "apt-get install postgresql-15-auto-failover pg-auto-failover-cli"

MONITOR="" NODE1="" NODE2=""
# below PID: the pg_autoctl processes under PID (its supervisor's children).
below() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    [ "$(ps -o comm= -p "$c")" = pg_autoctl ] && echo "$c"
    below "$c"
  done
}
cleanup() {
  local p kids
  for p in "$NODE2" "$NODE1" "$MONITOR"; do
    [ -n "$p" ] || continue
    kids=$(below "$p")
    stop_pid "$p"
    for k in $kids; do stop_pid "$k"; done
  done
  for d in n1 n2 monitor; do stop_server "${DIR:-/nonexistent}/$d"; done
  finish
}
trap cleanup EXIT
trap 'exit 130' INT TERM

workdir pg_auto_failover
read -r PM P1 P2 < <(ports 3)
# Every pg_autoctl file (config, state, pid, sockets) inside $DIR.
export XDG_CONFIG_HOME="$DIR/xdg/config" XDG_DATA_HOME="$DIR/xdg/share" \
  XDG_RUNTIME_DIR="$DIR/xdg/run" PG_REGRESS_SOCK_DIR="$DIR" PGHOST="$DIR"
as_postgres mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
monitor_uri="postgres://autoctl_node@127.0.0.1:$PM/pg_auto_failover?sslmode=disable"
states() {
  PGCONNECT_TIMEOUT=2 "$PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$PM" -U postgres -d pg_auto_failover \
    -c "select string_agg(nodename||':'||reportedstate||'/'||goalstate, ' ' order by nodeid) from pgautofailover.node" 2>/dev/null
}
states_are() { [ "$(states)" = "$1" ]; }

spawn "$DIR/monitor.log" pg_autoctl create monitor --pgctl "$PGBIN/pg_ctl" \
  --pgdata "$DIR/monitor" --pgport "$PM" --hostname 127.0.0.1 --listen 127.0.0.1 \
  --auth trust --no-ssl --run
MONITOR=$SPAWNED
until_ok 90 "the monitor answers" states
node() { # N PORT
  spawn "$DIR/n$1.log" pg_autoctl create postgres --pgctl "$PGBIN/pg_ctl" \
    --pgdata "$DIR/n$1" --pgport "$2" --listen 127.0.0.1 --hostname 127.0.0.1 \
    --name "n$1" --dbname postgres --monitor "$monitor_uri" --auth trust --no-ssl --run
}
node 1 "$P1"; NODE1=$SPAWNED
until_ok 120 "n1 single" states_are "n1:single/single"
node 2 "$P2"; NODE2=$SPAWNED
until_ok 180 "n1 primary, n2 secondary" states_are "n1:primary/primary n2:secondary/secondary"
sleep 5

say "pg_auto_failover: stopping the primary's server (pg_ctl stop -m immediate)"
t0=$(now_ns)
as_postgres "$PGBIN/pg_ctl" -D "$DIR/n1" stop -m immediate -w >/dev/null
measure pg_auto_failover "$P2" "$t0"
