#!/usr/bin/env bash
# How many etcd revisions per second Patroni writes, measured the way
# tests/examples/etcd_revisions.rs measures Watchpost's cluster mode:
# etcd's revision (`header.revision` of any answer, one more for every
# write) read before and after a window (SECONDS, default 30) of three
# Patroni members with its defaults (loop_wait 10 s), idle, and then with
# an INSERT every 100 ms on the leader. Prints
#   RESULT tool=patroni-revisions-idle revisions=N seconds=S per_second=R
#   RESULT tool=patroni-revisions-writes revisions=N seconds=S per_second=R
# Needs patroni, etcd-server and curl (`cargo xtask bench --only etcd`).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/patroni_lib.sh"
SECONDS_WINDOW=${1:-30}

cleanup() {
  patroni_down
  finish
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# revision: etcd's current revision (a range read of an absent key).
revision() {
  curl -sf -X POST "http://127.0.0.1:$EC/v3/kv/range" -d '{"key":"AA=="}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'
}

# window TOOL [SQL]: the rate over the window, SQL run on the leader every 100 ms.
window() {
  local tool=$1 sql=${2:-} first last t0 t1
  first=$(revision) || fail "etcd gave no revision"
  t0=$(now_ns)
  while [ $(( ($(now_ns) - t0) / 1000000000 )) -lt "$SECONDS_WINDOW" ]; do
    [ -n "$sql" ] && value "${PG[1]}" "$sql" >/dev/null
    sleep 0.1
  done
  last=$(revision) || fail "etcd gave no revision"
  t1=$(now_ns)
  python3 -c 'import sys
tool, n, ns, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"RESULT tool={tool} revisions={n} seconds={s} per_second={n / (ns / 1e9):.3f}")' \
    "$tool" $((last - first)) $((t1 - t0)) "$SECONDS_WINDOW"
}

workdir patroni-revisions
patroni_up 3
sleep 21   # two HA loops with every member up, as the Watchpost side settles
say "patroni: idle, ${SECONDS_WINDOW}s"
window patroni-revisions-idle
value "${PG[1]}" "CREATE TABLE load (id serial, at timestamptz default now())" >/dev/null
say "patroni: an INSERT every 100 ms on the leader, ${SECONDS_WINDOW}s"
window patroni-revisions-writes "INSERT INTO load DEFAULT VALUES"
