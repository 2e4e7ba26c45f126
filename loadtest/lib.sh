# Shared by the load-test scripts (sourced, from the repository root): a fresh database and
# Redis prefix per run, the release build, `bestie` started with load-test settings, and the
# cleanup when the script exits (server stopped, database dropped, Redis keys deleted).
#
#   source loadtest/lib.sh
#   bench_init NAME PORT        # RUN_ID, WORK, RESULTS, REPORT; BESTIE__* for ports PORT, PORT+1
#   bench_build -p bestie ...   # scripts/deps, then a locked release build of those packages
#   target/release/bestie migrate ...   # anything to prepare the database before the start
#   bench_start [ARGS...]       # `bestie serve ARGS` in the background, waits for /readyz
#   bench_server_log            # the server's warnings and errors, for a report
#
# Every customer signs in from 127.0.0.1, so the per-address sign-in limits are lifted, and
# one-time codes come back in responses (`otp_sender=dev`).

# Prints "$1: $2" to stderr.
bench_log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

bench_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# bench_init NAME PORT: names the run and its files, exports the server's settings.
bench_init() {
  BENCH_NAME=$1
  BENCH_PORT=$2
  BENCH_INTERNAL_PORT=$(($2 + 1))
  RUN_ID=${BENCH_NAME//[^a-z0-9]/}$(date +%s)
  RESULTS=loadtest/results
  mkdir -p "$RESULTS"
  BENCH_STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  REPORT="$RESULTS/$BENCH_NAME-$BENCH_STAMP.md"
  WORK=$(mktemp -d)
  BENCH_SERVER=""
  BENCH_DB="bestie_${RUN_ID}"
  export BESTIE__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB" BESTIE__REDIS__PREFIX="$RUN_ID"
  # REDIS_URL=$(scripts/redis-cluster) runs against a Redis Cluster instead.
  BENCH_REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
  export BESTIE__REDIS__URL="$BENCH_REDIS_URL"
  export BESTIE__LOG__FILTER=warn
  export BESTIE__API__PUBLIC_ADDR=127.0.0.1:$BENCH_PORT BESTIE__API__INTERNAL_ADDR=127.0.0.1:$BENCH_INTERNAL_PORT
  export BESTIE__AUTH__OTP_SENDER=dev
  export BESTIE__AUTH__RATE_LIMIT_BURST=10000 BESTIE__AUTH__RATE_LIMIT_PER_MINUTE=10000
  export BESTIE__AUTH__OTP_MAX_PER_ADDRESS_PER_HOUR=10000 BESTIE__AUTH__OTP_MAX_PER_PHONE_PER_HOUR=100
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Stops the server, drops the database, deletes the run's Redis keys and the work folder.
bench_cleanup() {
  if [ -n "${BENCH_SERVER:-}" ]; then
    kill "$BENCH_SERVER" 2>/dev/null || true
    wait "$BENCH_SERVER" 2>/dev/null || true
  fi
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
  bench_redis_purge "${RUN_ID}:*"
  rm -rf "$WORK"
}

# bench_redis_purge PATTERN: deletes the keys matching PATTERN from the Redis of
# $BENCH_REDIS_URL (on a Redis Cluster, from each master: a multi-key DEL must stay in a slot).
bench_redis_purge() {
  local url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379} first nodes node
  if [[ $url == redis-cluster://* ]]; then
    first=${url#redis-cluster://}; first=${first##*@}; first=${first%%\?*}
    nodes=$(redis-cli -h "${first%:*}" -p "${first##*:}" cluster nodes 2>/dev/null \
      | awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "@"); print a[1]}')
  else
    first=${url#redis://}; first=${first##*@}; first=${first%%/*}
    nodes=$first
  fi
  for node in $nodes; do
    redis-cli -h "${node%:*}" -p "${node##*:}" --scan --pattern "$1" \
      | awk '{print "UNLINK " $0}' | redis-cli -h "${node%:*}" -p "${node##*:}" >/dev/null 2>&1 || true
  done
}

# bench_build PACKAGE_ARGS...: Redis and Postgres up (and curl and redis-cli, which the
# scripts use, installed when missing), then the release build.
bench_build() {
  scripts/deps
  if ! command -v curl >/dev/null || ! command -v redis-cli >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl redis-tools >/dev/null
  fi
  cargo build --release --locked "$@" 2>&1 | tail -n 1
  ulimit -n "$(ulimit -Hn)"
}

# bench_start [ARGS...]: `bestie serve ARGS` in the background, logging to $WORK/server.log;
# returns once /readyz answers on the internal listener (30 s at most). BESTIE=path runs
# another build (an older commit's, to compare on the same host) instead of this tree's.
bench_start() {
  bench_port_free "$BENCH_PORT" && bench_port_free "$BENCH_INTERNAL_PORT" || {
    bench_log "port $BENCH_PORT or $BENCH_INTERNAL_PORT is taken (another run?)"
    return 1
  }
  "${BESTIE:-target/release/bestie}" serve "$@" >"$WORK/server.log" 2>&1 &
  BENCH_SERVER=$!
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$BENCH_INTERNAL_PORT/readyz" >/dev/null && return 0
    kill -0 "$BENCH_SERVER" 2>/dev/null || break
    sleep 0.1
  done
  bench_log "the server did not become ready:"
  tail -n 20 "$WORK/server.log" >&2
  return 1
}

# The server's warnings and errors as a report section (nothing when there were none).
bench_server_log() {
  [ -s "$WORK/server.log" ] || return 0
  echo
  echo "Server warnings and errors: $(wc -l <"$WORK/server.log") lines; the first:"
  echo
  echo '```'
  head -n 5 "$WORK/server.log"
  echo '```'
}

# " (with uncommitted changes)" when the worktree is dirty.
# The kernel's write-back settings, which decide how often a WAL fsync waits behind a burst of
# data pages (docs/OPERATIONS.md, "The Postgres host").
bench_writeback() {
  local source disk
  source=$(findmnt -no source --target /var/lib/postgresql 2>/dev/null || findmnt -no source --target /)
  # A partition's disk, or the device itself when it is a whole disk.
  disk=$(lsblk -no pkname "$source" 2>/dev/null | head -1)
  disk=${disk:-$(basename "$source")}
  printf 'vm.dirty_expire_centisecs=%s, vm.dirty_writeback_centisecs=%s, vm.dirty_background_bytes=%s' \
    "$(cat /proc/sys/vm/dirty_expire_centisecs)" "$(cat /proc/sys/vm/dirty_writeback_centisecs)" \
    "$(cat /proc/sys/vm/dirty_background_bytes)"
  [ -n "$disk" ] && [ -r "/sys/block/$disk/queue/wbt_lat_usec" ] &&
    printf ', %s wbt_lat_usec=%s' "$disk" "$(cat "/sys/block/$disk/queue/wbt_lat_usec")"
  return 0
}
bench_dirty() { [ -z "$(git status --porcelain)" ] || echo " (with uncommitted changes)"; }
