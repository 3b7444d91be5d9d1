# Helpers of the peer measurements (sourced by repmgr.sh, patroni.sh,
# patroni_revisions.sh and pg_auto_failover.sh; run by `cargo xtask bench --only
# peers`). Everything listens on 127.0.0.1 in a fresh /tmp/watchpost-peer-*
# directory; servers run as the postgres user. The clock is the one our own
# failover benchmark uses (tests/examples/failover_bench.rs): t0 just
# before the failure is injected, then a write is tried on the standby's
# port every 100 ms; the figure is the milliseconds from t0 to the first
# write that succeeded. Each script prints one line
#   RESULT tool=NAME failover_ms=N
# and removes everything it started, whatever happens.

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
GIVE_UP_S=${GIVE_UP_S:-180}

say() { echo "[$(date +%H:%M:%S.%3N)] $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (the servers run as the postgres user)"
id postgres >/dev/null 2>&1 || fail "no postgres user: apt-get install postgresql-15"

# as_postgres CMD...: CMD as the postgres user, in the foreground.
as_postgres() { runuser -u postgres -- "$@"; }

# spawn LOG CMD...: CMD in the background as postgres, from $DIR, output to
# LOG; SPAWNED is the daemon's own PID (exec all the way down).
spawn() {
  local log=$1; shift
  ( cd "$DIR" && exec setpriv --reuid=postgres --regid=postgres --init-groups \
      env HOME="$DIR" USER=postgres LOGNAME=postgres "$@" >>"$log" 2>&1 ) &
  SPAWNED=$!
  disown "$SPAWNED"
}

# ports N: N distinct free loopback ports.
ports() {
  python3 -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

# workdir NAME: a fresh directory the postgres user owns; sets DIR.
workdir() {
  DIR=$(mktemp -d "/tmp/watchpost-peer-$1.XXXXXX")
  chmod 755 "$DIR"
  chown postgres: "$DIR"
}

now_ns() { date +%s%N; }

# value PORT SQL: one value, empty when the server does not answer.
value() {
  PGCONNECT_TIMEOUT=2 "$PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$1" -U postgres -d postgres \
    -c "$2" 2>/dev/null
}

# streaming PORT [N]: the primary on PORT has N (default 1) streaming standbys.
streaming() { [ "$(value "$1" "select count(*) from pg_stat_replication where state = 'streaming'")" = "${2:-1}" ]; }

# until_ok SECONDS WHAT CMD...: retry CMD every 0.5 s, fail after SECONDS.
until_ok() {
  local secs=$1 what=$2; shift 2
  local limit=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$limit" ] || fail "gave up after ${secs}s waiting for: $what"
    sleep 0.5
  done
}

# writable_after PORT T0: ms from T0 to the first write accepted on PORT
# (tried every 100 ms); fails after GIVE_UP_S.
writable_after() {
  local limit=$(( $2 + GIVE_UP_S * 1000000000 ))
  while [ "$(now_ns)" -lt "$limit" ]; do
    if PGCONNECT_TIMEOUT=1 "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -c 'CREATE TABLE IF NOT EXISTS peer_write(x int); INSERT INTO peer_write VALUES (1)' \
        >/dev/null 2>&1; then
      echo $(( ($(now_ns) - $2) / 1000000 ))
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# stop_pid PID: TERM, then KILL after 10 s (only processes this script started).
stop_pid() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# stop_server DATADIR: an immediate stop of the server running there, if any.
stop_server() {
  [ -f "$1/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$1" stop -m immediate -w >/dev/null 2>&1
  return 0
}

# finish: remove the work directory (KEEP=1 keeps it, with its logs).
finish() {
  if [ -n "${DIR:-}" ] && [ -d "$DIR" ]; then
    if [ "${KEEP:-0}" = 1 ]; then say "kept $DIR"; else rm -rf "$DIR"; fi
  fi
}

# measure TOOL PORT T0: wait for the write, print the RESULT line.
measure() {
  local ms
  if ms=$(writable_after "$2" "$3"); then
    say "$1: the standby accepted a write after $ms ms"
    echo "RESULT tool=$1 failover_ms=$ms"
  else
    fail "$1: no write accepted within ${GIVE_UP_S}s"
  fi
}
