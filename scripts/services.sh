#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on loopback, installing them from the
# distribution's packages and starting them when needed. Sourced by scripts/run and
# scripts/test; changes nothing on a machine where both already answer.

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing $* and no apt-get to install it: install it by hand" >&2
    return 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_build_deps() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install the Rust toolchain (https://rustup.rs) first" >&2
    return 1
  fi
  local missing=()
  dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  if [ ${#missing[@]} -gt 0 ] && command -v dpkg >/dev/null 2>&1; then apt_install "${missing[@]}"; fi
}

pg_ready() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null
}

ensure_postgres() {
  command -v pg_isready >/dev/null 2>&1 || apt_install postgresql-client
  if pg_ready; then return 0; fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$version main$"; then
    as_root pg_createcluster "$version" main -p "$PG_PORT" >&2
    fresh=1
  fi
  if [ -n "${fresh:-}" ]; then
    # A cluster we created: trust loopback connections, as a development machine does.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
  echo "PostgreSQL did not become ready on $PG_HOST:$PG_PORT" >&2
  return 1
}

redis_ready() {
  [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || apt_install redis-server
  if redis_ready; then return 0; fi
  mkdir -p /tmp/orderscope-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp/orderscope-redis --logfile /tmp/orderscope-redis/redis.log >&2
  for _ in $(seq 1 20); do redis_ready && return 0; sleep 0.5; done
  echo "Redis did not become ready on 127.0.0.1:$REDIS_PORT" >&2
  return 1
}

ensure_services() {
  ensure_build_deps
  ensure_postgres
  ensure_redis
}
