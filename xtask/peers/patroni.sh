#!/usr/bin/env bash
# Patroni with its defaults (ttl 30, loop_wait 10, retry_timeout 10) on a
# one-member etcd: a leader and a streaming replica; the leader's node is
# lost (its Patroni killed with SIGKILL, then its server stopped with
# `pg_ctl stop -m immediate`), and the time to the first write on the
# promoted replica measured (see lib.sh). Needs patroni and etcd-server.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/patroni_lib.sh"

cleanup() {
  patroni_down
  finish
}
trap cleanup EXIT
trap 'exit 130' INT TERM

workdir patroni
patroni_up 2
sleep 21   # two HA loops with both members up

say "patroni: node loss (kill -9 Patroni, then pg_ctl stop -m immediate)"
t0=$(now_ns)
kill -9 "${PATRONI[1]}"
PATRONI[1]=""
as_postgres "$PGBIN/pg_ctl" -D "$DIR/n1" stop -m immediate -w >/dev/null
measure patroni "${PG[2]}" "$t0"
