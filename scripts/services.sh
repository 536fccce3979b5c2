#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer and tells the scripts how to reach them.
# Sourced by scripts/run, scripts/test and scripts/bench-*.
#
#   ensure_services VAR   # VAR: DATABASE_URL (run) or TEST_DATABASE_URL (tests, benchmarks)
#
# Afterwards PG_SERVER_URL is the server part of a connection string
# (postgres://user[:password]@host:port, no database name) and REDIS_URL is set.
#
# - When VAR (or REDIS_URL) is already set, that service is the user's: nothing is
#   installed, started or created for it.
# - Otherwise PostgreSQL is expected on PG_HOST:PG_PORT (127.0.0.1:5432) and Redis on
#   127.0.0.1:REDIS_PORT (6379). Missing packages are installed with apt-get; a missing
#   PostgreSQL cluster on PG_PORT is created with the distribution's defaults and
#   started; Redis is started (nothing kept on disk) when nothing answers on its port.
# - If PostgreSQL refuses `postgres` without a password (the distribution's default,
#   scram-sha-256 on loopback), an `orderscope` role (LOGIN CREATEDB) is created once
#   through the local socket as the `postgres` system user, with a generated password
#   kept in $ORDERSCOPE_CONFIG_DIR/postgres-<port>.password (mode 600, outside the
#   repository). Nothing else in the cluster is changed.

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
ORDERSCOPE_CONFIG_DIR=${ORDERSCOPE_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/orderscope}

say() { echo "orderscope: $*" >&2; }

# Prints the problem and the one command that solves it, and fails.
cannot() {
  say "$1"
  [ -n "${2:-}" ] && echo "  run: $2" >&2
  return 1
}

have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    cannot "this step needs root, and there is no sudo: $*" "su -c '$*'"
  fi
}

# Runs a command as the `postgres` system user, who may connect through the local
# socket (`peer` authentication in the distribution's pg_hba.conf).
as_postgres() {
  if [ "$(id -u)" -eq 0 ] && have runuser; then
    runuser -u postgres -- "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  elif have sudo; then
    sudo -u postgres "$@"
  else
    cannot "creating the orderscope role needs the postgres system user (root or sudo), and neither is available" \
      "export DATABASE_URL=postgres://USER:PASSWORD@$PG_HOST:$PG_PORT/orderscope"
  fi
}

apt_install() {
  if ! have apt-get; then
    cannot "missing $*, and there is no apt-get to install it" \
      "install $* with your package manager, or set DATABASE_URL / REDIS_URL to servers you run"
    return 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    APT_UPDATED=1
  fi
  say "installing $* from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 ||
    cannot "could not install $*" "sudo apt-get install -y $*"
}

ensure_build_deps() {
  have cargo || cannot "cargo is missing: install the Rust toolchain first" \
    "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
  local missing=()
  if have dpkg; then
    dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
    have pkg-config || missing+=(pkg-config)
    have cc || missing+=(build-essential)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}" || return 1; fi
  fi
}

# Whether something accepts TCP connections on host:port.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

pg_ready() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null
}

is_loopback() {
  case "$1" in 127.* | localhost | ::1) return 0 ;; *) return 1 ;; esac
}

# The Debian cluster (version and name) that listens on PG_PORT, if any.
cluster_on_port() {
  have pg_lsclusters || return 0
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1" "$2; exit }'
}

ensure_postgres_running() {
  have pg_isready && have psql || apt_install postgresql-client || return 1
  pg_ready && return 0
  if port_open "$PG_HOST" "$PG_PORT"; then
    cannot "port $PG_PORT on $PG_HOST is taken by a program that is not PostgreSQL" \
      "PG_PORT=<a free port> $0   (or set DATABASE_URL to your PostgreSQL)"
    return 1
  fi
  if ! is_loopback "$PG_HOST"; then
    cannot "PostgreSQL does not answer on $PG_HOST:$PG_PORT" \
      "export DATABASE_URL=postgres://USER:PASSWORD@$PG_HOST:$PG_PORT/orderscope"
    return 1
  fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-client || return 1
    # The package may have created (and started) its own cluster.
    pg_ready && return 0
  fi
  local cluster version name
  cluster=$(cluster_on_port)
  if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    name=main
    pg_lsclusters -h 2>/dev/null | awk '{ print $1" "$2 }' | grep -q "^$version main$" &&
      name="orderscope$PG_PORT"
    say "creating PostgreSQL cluster $version/$name on port $PG_PORT (distribution defaults)"
    as_root pg_createcluster "$version" "$name" -p "$PG_PORT" >/dev/null || return 1
    cluster="$version $name"
  fi
  say "starting PostgreSQL cluster ${cluster/ //} on port $PG_PORT"
  # shellcheck disable=SC2086
  as_root pg_ctlcluster --skip-systemctl-redirect $cluster start >&2 || true
  for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
  cannot "PostgreSQL did not become ready on $PG_HOST:$PG_PORT (see /var/log/postgresql/)" \
    "pg_ctlcluster ${cluster/ / } start"
}

# Whether a connection string reaches the server (never prompts for a password).
pg_connects() {
  PGCONNECT_TIMEOUT=5 psql -w -X -Atq "$1/postgres" -c 'SELECT 1' >/dev/null 2>&1
}

random_password() {
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# Creates (or re-keys) the orderscope role through the local socket and prints its
# connection string.
ensure_pg_role() {
  local file="$ORDERSCOPE_CONFIG_DIR/postgres-$PG_PORT.password" password url
  if [ -s "$file" ]; then
    password=$(cat "$file")
    url="postgres://orderscope:$password@$PG_HOST:$PG_PORT"
    if pg_connects "$url"; then
      echo "$url"
      return 0
    fi
  fi
  if ! is_loopback "$PG_HOST"; then
    cannot "PostgreSQL on $PG_HOST:$PG_PORT asks for a password" \
      "export DATABASE_URL=postgres://USER:PASSWORD@$PG_HOST:$PG_PORT/orderscope"
    return 1
  fi
  [ -n "${password:-}" ] || password=$(random_password)
  say "PostgreSQL on port $PG_PORT asks for a password: creating the orderscope role (password in $file)"
  local socket_dir=${PG_SOCKET_DIR:-/var/run/postgresql}
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$socket_dir" -p "$PG_PORT" -d postgres \
    -v pw="$password" >/dev/null <<'SQL' || return 1
SELECT 'CREATE ROLE orderscope' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orderscope') \gexec
ALTER ROLE orderscope WITH LOGIN CREATEDB PASSWORD :'pw';
SQL
  mkdir -p "$ORDERSCOPE_CONFIG_DIR"
  (umask 077 && printf '%s' "$password" >"$file")
  url="postgres://orderscope:$password@$PG_HOST:$PG_PORT"
  pg_connects "$url" || cannot "the orderscope role was created but cannot log in over TCP on $PG_HOST:$PG_PORT (check pg_hba.conf)" \
    "export DATABASE_URL=postgres://USER:PASSWORD@$PG_HOST:$PG_PORT/orderscope" || return 1
  echo "$url"
}

# Sets PG_SERVER_URL: the user's, the passwordless `postgres` user's, or the
# orderscope role's.
ensure_postgres() {
  local var=$1
  if [ -n "${!var:-}" ]; then
    have psql || apt_install postgresql-client || return 1
    if [ "$var" = DATABASE_URL ]; then
      PG_SERVER_URL=${DATABASE_URL%%\?*}
      PG_SERVER_URL=${PG_SERVER_URL%/*}
    else
      PG_SERVER_URL=${!var}
    fi
    return 0
  fi
  ensure_postgres_running || return 1
  if pg_connects "postgres://postgres@$PG_HOST:$PG_PORT"; then
    PG_SERVER_URL="postgres://postgres@$PG_HOST:$PG_PORT"
  else
    PG_SERVER_URL=$(ensure_pg_role) || return 1
  fi
}

redis_ready() {
  [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

ensure_redis() {
  if [ -n "${REDIS_URL:-}" ]; then return 0; fi
  have redis-server && have redis-cli || apt_install redis-server || return 1
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  redis_ready && return 0
  if port_open 127.0.0.1 "$REDIS_PORT"; then
    cannot "port $REDIS_PORT is taken by a program that is not Redis" \
      "REDIS_PORT=<a free port> $0   (or set REDIS_URL to your Redis)"
    return 1
  fi
  local dir=${TMPDIR:-/tmp}/orderscope-redis-$REDIS_PORT
  mkdir -p "$dir"
  say "starting Redis on 127.0.0.1:$REDIS_PORT (nothing kept on disk; stop it with: redis-cli -p $REDIS_PORT shutdown nosave)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >&2
  for _ in $(seq 1 20); do redis_ready && return 0; sleep 0.5; done
  cannot "Redis did not become ready on 127.0.0.1:$REDIS_PORT (see $dir/redis.log)" \
    "redis-server --port $REDIS_PORT"
}

ensure_services() {
  local var=${1:-TEST_DATABASE_URL}
  ensure_build_deps || exit 1
  ensure_postgres "$var" || exit 1
  ensure_redis || exit 1
  export PG_SERVER_URL REDIS_URL
}

# Builds the binary with ORDERSCOPE_PROFILE (release unless set) in CARGO_TARGET_DIR
# and sets ORDERSCOPE_BIN to it. An ORDERSCOPE_BIN set beforehand names a binary
# already built, and is used as it is.
build_orderscope() {
  if [ -n "${ORDERSCOPE_BIN:-}" ]; then
    [ -x "$ORDERSCOPE_BIN" ] || cannot "ORDERSCOPE_BIN=$ORDERSCOPE_BIN is not an executable" "unset ORDERSCOPE_BIN"
    return
  fi
  local profile=${ORDERSCOPE_PROFILE:-release} dir
  cargo build --profile "$profile" --quiet --bin orderscope
  case "$profile" in dev | test) dir=debug ;; *) dir=$profile ;; esac
  ORDERSCOPE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/$dir/orderscope"
  export ORDERSCOPE_BIN
}

# What the client tests (tests/api/clients.rs) run: Node with the packages pinned in
# tests/clients/package-lock.json (test-time only; the product needs no Node), and
# Debian's headless Chromium.
ensure_client_test_tools() {
  local repo=$1
  have node && have npm || apt_install nodejs npm || return 1
  have chromium || have chromium-browser || apt_install chromium || return 1
  if [ ! -f "$repo/tests/clients/node_modules/.package-lock.json" ] ||
    ! cmp -s "$repo/tests/clients/package-lock.json" "$repo/tests/clients/node_modules/.lock-installed"; then
    say "installing the client test packages (npm ci in tests/clients)"
    (cd "$repo/tests/clients" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
      cannot "npm ci failed in tests/clients" "cd tests/clients && npm ci"
    cp "$repo/tests/clients/package-lock.json" "$repo/tests/clients/node_modules/.lock-installed"
  fi
}
