# Shared set-up for scripts/run and scripts/test: the virtualenv and the local services.
# Sourced, not run. Every wait has a deadline and every failure says what to do.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
# The machine's own PostgreSQL and RabbitMQ: what scripts/test uses when the URLs are unset.
# (Unset, config/settings.py itself uses the embedded backends instead: see scripts/run.)
LOCAL_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
LOCAL_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_venv FILE...: create .venv and install the requirements FILEs (paths from the
# repository's root); skipped while they keep the hash recorded by the last successful install of
# the same FILEs. Each set of files has its stamp: scripts/run's runtime install and scripts/test's
# runtime-and-dev install do not undo each other's.
ensure_venv() {
    command -v python3 >/dev/null || die "python3 is not installed (Python 3.11 is needed)"
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtualenv in .venv"
        python3 -m venv "$VENV" || die "could not create .venv (on Debian: apt-get install python3-venv)"
    fi
    local stamp="$VENV/.$(IFS=+; echo "$*").sha256" wanted file arguments=()
    wanted="$(cd "$ROOT" && cat "$@" | sha256sum | cut -d' ' -f1)"
    for file in "$@"; do arguments+=(-r "$ROOT/$file"); done
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        say "installing $* into .venv"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${arguments[@]}" \
            || die "could not install $* (see pip's output above)"
        echo "$wanted" > "$stamp"
    fi
}

# wait_for DESCRIPTION SECONDS COMMAND...: run COMMAND until it succeeds or the deadline passes.
wait_for() {
    local what="$1" seconds="$2"; shift 2
    local deadline=$(( $(date +%s) + seconds ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$what did not come up within ${seconds}s"
        sleep 0.5
    done
}

# A URL with its password shown as **, fit for the terminal.
mask_password() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@]*@#\1:**@#'; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# is_local_default URL PORT: true when URL is on this machine's loopback (or a Unix socket) at
# the default PORT, i.e. a service these scripts may start; any other URL is the user's own.
is_local_default() {
    local rest="${1#*://}" host port
    rest="${rest%%/*}"
    rest="${rest##*@}"
    if [ "${rest:0:1}" = "[" ]; then
        host="${rest%%]*}"; host="${host#[}"; port="${rest#*]}"; port="${port#:}"
    else
        host="${rest%%:*}"; port=""; [ "$rest" = "$host" ] || port="${rest#*:}"
    fi
    case "$host" in ""|localhost|127.0.0.1|::1) ;; *) return 1 ;; esac
    [ -z "$port" ] || [ "$port" = "$2" ]
}

postgres_ready() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 2
    else
        port_open 127.0.0.1 5432
    fi
}

# Start the machine's PostgreSQL when DATABASE_URL points at it and it is down (unset: the
# embedded PostgreSQL, which the settings start themselves).
ensure_postgres() {
    [ -n "${DATABASE_URL:-}" ] && is_local_default "$DATABASE_URL" 5432 || return 0
    postgres_ready && return 0
    command -v pg_ctlcluster >/dev/null \
        || die "PostgreSQL is not running on 127.0.0.1:5432 and is not installed here; install it (on Debian: apt-get install postgresql) or point DATABASE_URL at one"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
    [ -n "$version" ] || die "no PostgreSQL cluster in /etc/postgresql; install it (on Debian: apt-get install postgresql) or point DATABASE_URL at one"
    say "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || die "could not start PostgreSQL (try: pg_ctlcluster $version main start)"
    wait_for "PostgreSQL on 127.0.0.1:5432" 60 postgres_ready
}

# Create the database DATABASE_URL names when it is local and missing (pytest makes its own;
# the embedded PostgreSQL's database exists from its first start).
ensure_database() {
    local url="${DATABASE_URL:-}"
    [ -n "$url" ] && is_local_default "$url" 5432 || return 0
    OUTBOX_DATABASE_URL="$url" timeout 30 "$VENV/bin/python" - <<'PY' || die "could not create the database of DATABASE_URL"
import os

import dj_database_url
import psycopg
from psycopg import sql

config = dj_database_url.parse(os.environ["OUTBOX_DATABASE_URL"])
params = {"host": config["HOST"] or None, "port": config["PORT"] or None, "user": config["USER"] or None,
          "password": config["PASSWORD"] or None, "connect_timeout": 5}
with psycopg.connect(dbname="postgres", autocommit=True, **params) as connection:
    if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
        print(f"==> creating the database {config['NAME']}", flush=True)
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
PY
}

rabbitmq_ready() { port_open 127.0.0.1 5672 && timeout 15 rabbitmqctl -q -t 10 await_startup; }

# Start the machine's RabbitMQ when BROKER_URL points at it and it is down (unset: the
# serverless filesystem transport).
ensure_rabbitmq() {
    [ -n "${BROKER_URL:-}" ] && is_local_default "$BROKER_URL" 5672 || return 0
    if ! port_open 127.0.0.1 5672; then
        command -v rabbitmq-server >/dev/null \
            || die "RabbitMQ is not running on 127.0.0.1:5672 and is not installed here; install it (on Debian: apt-get install rabbitmq-server) or point BROKER_URL at one"
        say "starting RabbitMQ"
        rabbitmq-server -detached || die "could not start RabbitMQ (see /var/log/rabbitmq/)"
        wait_for "RabbitMQ on 127.0.0.1:5672" 120 rabbitmq_ready
    fi
    ensure_rabbitmq_plugin rabbitmq_consistent_hash_exchange
}

# The notifications consumer's partitions hang off a consistent-hash exchange: its plugin ships
# with RabbitMQ, disabled.
ensure_rabbitmq_plugin() {
    command -v rabbitmq-plugins >/dev/null || return 0
    rabbitmq-plugins -q list -e -m 2>/dev/null | grep -qx "$1" && return 0
    say "enabling the RabbitMQ plugin $1"
    rabbitmq-plugins -q enable "$1" >/dev/null || die "could not enable the RabbitMQ plugin $1"
}

# The test suite's private vhost on the local RabbitMQ, and one user per broker role on it with
# the permissions the service documents (manage.py broker_permissions), plus an administrator
# for the fixtures. Names carry each test's BROKER_NAMESPACE (test-…., chaos-…., bench-….).
# OUTBOX_TEST_VHOST gives a checkout its own vhost, so suites run side by side keep their own permissions.
TEST_VHOST="${OUTBOX_TEST_VHOST:-outbox-test}"
TEST_BROKER_PASSWORD="outbox-test-password"
TEST_NAMESPACE_PATTERN='(?:[a-z]+-[0-9a-f]+\.)?'
TEST_BROKER_ROLES=(relay consumer replay monitor)

# Create them (idempotent) and point BROKER_URL and the role URLs at them, when BROKER_URL is the
# machine's own RabbitMQ and no role URL is set already.
ensure_broker_users() {
    [ -n "${BROKER_URL:-}" ] && is_local_default "$BROKER_URL" 5672 || return 0
    [ -z "${RELAY_BROKER_URL:-}${CONSUMER_BROKER_URL:-}${REPLAY_BROKER_URL:-}" ] || return 0
    command -v rabbitmqctl >/dev/null || die "rabbitmqctl is missing; it creates the test suite's broker users"
    local role user configure write read wanted granted arguments=()
    for role in "${TEST_BROKER_ROLES[@]}"; do arguments+=(--user "$role=outbox-test-$role"); done
    wanted="$(printf 'outbox-test-admin\t.*\t.*\t.*\n'; "$VENV/bin/python" "$ROOT/manage.py" broker_permissions --tsv \
        --namespace-pattern "$TEST_NAMESPACE_PATTERN" "${arguments[@]}" 2>/dev/null)" \
        || die "manage.py broker_permissions failed"
    granted="$(rabbitmqctl -q list_permissions -p "$TEST_VHOST" 2>/dev/null || true)"
    # Each rabbitmqctl call starts an Erlang VM: only when something is missing.
    if [ -n "$(comm -23 <(sort <<<"$wanted") <(sort <<<"$granted"))" ]; then
        say "broker users for the tests on vhost $TEST_VHOST"
        rabbitmqctl -q list_vhosts | grep -qx "$TEST_VHOST" || rabbitmqctl -q add_vhost "$TEST_VHOST" \
            || die "could not create the vhost $TEST_VHOST (is RabbitMQ running, and may this user run rabbitmqctl?)"
        local existing
        existing="$(rabbitmqctl -q list_users | cut -f1)"
        while IFS=$'\t' read -r user configure write read; do
            grep -qx "$user" <<<"$existing" \
                || rabbitmqctl -q add_user "$user" "$TEST_BROKER_PASSWORD" </dev/null >/dev/null \
                || die "could not create the broker user $user"
            # </dev/null: rabbitmqctl would read the loop's remaining lines.
            rabbitmqctl -q set_permissions -p "$TEST_VHOST" "$user" "$configure" "$write" "$read" </dev/null >/dev/null \
                || die "could not set the permissions of $user"
        done <<<"$wanted"
    fi
    local base="127.0.0.1:5672/$TEST_VHOST"
    export BROKER_URL="amqp://outbox-test-admin:$TEST_BROKER_PASSWORD@$base"
    export RELAY_BROKER_URL="amqp://outbox-test-relay:$TEST_BROKER_PASSWORD@$base"
    export CONSUMER_BROKER_URL="amqp://outbox-test-consumer:$TEST_BROKER_PASSWORD@$base"
    export REPLAY_BROKER_URL="amqp://outbox-test-replay:$TEST_BROKER_PASSWORD@$base"
}

# The node projects the tests run: the official AsyncAPI parser (contract-tests/) and the node
# consumer example. Installed with `npm ci` from their committed lock files when node_modules is
# missing or the lock changed since the last successful install.
NODE_PROJECTS=(contract-tests examples/node_consumer)
ensure_node_packages() {
    command -v node >/dev/null && command -v npm >/dev/null \
        || die "node and npm are not installed (node 20 runs the AsyncAPI parser and the node consumer example)"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [ "$major" -ge 20 ] || die "node $major is too old; the contract tests need node 20"
    local project stamp wanted
    for project in "${NODE_PROJECTS[@]}"; do
        stamp="$ROOT/$project/node_modules/.package-lock.sha256"
        wanted="$(sha256sum "$ROOT/$project/package-lock.json" | cut -d' ' -f1)"
        if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
            say "installing the node packages of $project (npm ci, from its package-lock.json)"
            (cd "$ROOT/$project" && npm ci --no-audit --no-fund --loglevel=error) \
                || die "npm ci failed in $project (see npm's output above; it needs the npm registry)"
            echo "$wanted" > "$stamp"
        fi
    done
}

# Debian's chromium, which the ops dashboard's browser test drives through Playwright (Playwright
# never downloads a browser of its own here). Installed with apt-get when missing and we are root.
CHROMIUM=/usr/bin/chromium
ensure_chromium() {
    [ -x "$CHROMIUM" ] && return 0
    command -v apt-get >/dev/null \
        || die "$CHROMIUM is missing and apt-get is not available; install Debian's chromium package"
    [ "$(id -u)" = 0 ] || die "$CHROMIUM is missing; install it with: sudo apt-get install -y chromium"
    say "$CHROMIUM is missing: the ops dashboard's browser test drives it through Playwright, which downloads no browser here"
    say "installing Debian's chromium package system-wide, as root: apt-get update && apt-get install -y chromium (install it yourself beforehand to skip this)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
        || die "could not install chromium (try: apt-get update && apt-get install -y chromium)"
    [ -x "$CHROMIUM" ] || die "chromium was installed but $CHROMIUM is not there"
}
