# Shared set-up for scripts/run and scripts/test: the virtualenv and the local services.
# Sourced, not run. Every wait has a deadline and every failure says what to do.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
DEFAULT_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Create .venv and install requirements.txt; skipped when it has not changed since.
ensure_venv() {
    command -v python3 >/dev/null || die "python3 is not installed"
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtualenv in .venv"
        python3 -m venv "$VENV" || die "could not create .venv (is python3-venv installed?)"
    fi
    local stamp="$VENV/.requirements.sha256" wanted
    wanted="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        say "installing requirements.txt"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
            || die "could not upgrade pip"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt" \
            || die "could not install requirements.txt"
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

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Start the machine's PostgreSQL when DATABASE_URL is unset or the local default and it is down.
ensure_postgres() {
    [ -z "${DATABASE_URL:-}" ] || [ "$DATABASE_URL" = "$DEFAULT_DATABASE_URL" ] || return 0
    port_open 127.0.0.1 5432 && return 0
    command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is missing"
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start \
        || die "could not start PostgreSQL"
    wait_for "PostgreSQL" 60 port_open 127.0.0.1 5432
}

# Start the machine's RabbitMQ when BROKER_URL is unset or the local default and it is down.
ensure_rabbitmq() {
    [ -z "${BROKER_URL:-}" ] || [ "$BROKER_URL" = "$DEFAULT_BROKER_URL" ] || return 0
    port_open 127.0.0.1 5672 && return 0
    command -v rabbitmq-server >/dev/null || die "RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is missing"
    say "starting RabbitMQ"
    rabbitmq-server -detached || die "could not start RabbitMQ"
    wait_for "RabbitMQ" 120 port_open 127.0.0.1 5672
    wait_for "RabbitMQ" 120 rabbitmqctl await_startup
}
