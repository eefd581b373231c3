"""docker-compose.yml cannot run here (no Docker engine), so it is checked against the code."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml
from django.core.management import get_commands
from django.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "relay", "consumer")
LONG_RUNNING_APP_SERVICES = ("web", "relay", "consumer")
MANAGE_PY_SERVICES = ("migrate", "relay", "consumer")
MONITORING_SERVICES = ("prometheus", "grafana", "jaeger")
# What each service adds to the shared environment: gunicorn's workers share metrics, and each
# broker role's own user goes only where that role runs (the web runs the admin's replay action).
SERVICE_ONLY_VARIABLES = {
    "migrate": set(),
    "web": {"PROMETHEUS_MULTIPROC_DIR", "REPLAY_BROKER_URL", "OTEL_SERVICE_NAME"},
    "relay": {"RELAY_BROKER_URL", "REPLAY_BROKER_URL", "OTEL_SERVICE_NAME"},
    "consumer": {"CONSUMER_BROKER_URL", "OTEL_SERVICE_NAME"},
}
# Which role's permissions each broker URL setting is granted; BROKER_URL only monitors.
ROLE_OF_URL = {"BROKER_URL": "monitor", "RELAY_BROKER_URL": "relay", "CONSUMER_BROKER_URL": "consumer"}
ROLE_OF_URL["REPLAY_BROKER_URL"] = "replay"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def settings_variables() -> set[str]:
    """The environment variables config/settings.py reads, found in its source."""
    source = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"""(?:os\.environ\.get|_env_\w+)\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))


def command_words(command: str | list[str]) -> list[str]:
    return command if isinstance(command, list) else shlex.split(command)


def management_command(words: list[str]) -> str:
    """The management command `python manage.py X ...` runs, after an optional `exec`."""
    words = words[1:] if words[:1] == ["exec"] else words
    assert words[:2] == ["python", "manage.py"], f"{shlex.join(words)} is not a manage.py command"
    return words[2]


def procfile_commands() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def test_the_stack_has_postgres_rabbitmq_every_app_service_and_monitoring(services):
    assert set(services) == {"postgres", "rabbitmq", *APP_SERVICES, *MONITORING_SERVICES}


def test_settings_reads_the_variables_compose_relies_on():
    assert {"DATABASE_URL", "BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"} <= settings_variables()


def test_every_compose_environment_variable_is_read_by_settings(services):
    known = settings_variables()
    for name in APP_SERVICES:
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which config/settings.py never reads"


def test_app_services_share_one_build_and_environment(compose, services):
    app = compose["x-app"]
    assert app["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert services[name]["build"] == app["build"]
        assert {key: environment[key] for key in app["environment"]} == app["environment"]
        extra = set(environment) - set(app["environment"])
        assert extra == SERVICE_ONLY_VARIABLES[name], f"{name} adds {sorted(extra)}"


def test_settings_accept_the_compose_environment(compose):
    # settings.py refuses bad values (DEBUG=maybe, DEBUG off without SECRET_KEY) at import.
    environment = {**os.environ, **{key: str(value) for key, value in compose["x-app"]["environment"].items()}}
    environment["DJANGO_SETTINGS_MODULE"] = "config.settings"
    assert read_in(environment, SETTING.format(name="DEBUG")) == "False"


def test_compose_runs_the_production_settings(compose):
    environment = compose["x-app"]["environment"]

    assert environment["ENVIRONMENT"] == "production"
    assert environment["DEBUG"] == "false"


def test_database_url_points_at_the_compose_postgres_service(services):
    postgres = services["postgres"]["environment"]
    for name in APP_SERVICES:
        database = urlsplit(services[name]["environment"]["DATABASE_URL"])
        assert database.scheme == "postgres"
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
        assert database.username == postgres.get("POSTGRES_USER", "postgres")
        assert database.password == postgres["POSTGRES_PASSWORD"]


def broker_urls(services) -> list[tuple[str, str, SplitResult]]:
    """(service, setting, URL) of every broker URL an app service is given."""
    return [
        (name, setting, urlsplit(services[name]["environment"][setting]))
        for name in APP_SERVICES
        for setting in sorted(set(ROLE_OF_URL) & set(services[name]["environment"]))
    ]


def test_every_broker_url_points_at_the_compose_rabbitmq_service(services):
    for name, setting, broker in broker_urls(services):
        assert (broker.scheme, broker.hostname, broker.port) == ("amqp", "rabbitmq", 5672), (name, setting)


# --- RabbitMQ's users, permissions and topology (its definitions file) --------------------------


@pytest.fixture(scope="module")
def definitions(services) -> dict:
    rabbitmq = services["rabbitmq"]
    config = (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text()
    mounted = mount_target(rabbitmq, "./deploy/rabbitmq/definitions.json")
    assert re.search(rf"^load_definitions = {re.escape(mounted)}$", config, re.MULTILINE)
    assert mount_target(rabbitmq, "./deploy/rabbitmq/rabbitmq.conf").startswith("/etc/rabbitmq/conf.d/")
    return json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())


def rabbitmq_password_matches(user: dict, password: str) -> bool:
    """RabbitMQ's salted SHA-256: base64(salt + sha256(salt + password)), a 4-byte salt."""
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    stored = base64.b64decode(user["password_hash"])
    salt, digest = stored[:4], stored[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def test_every_broker_url_in_compose_logs_in_as_a_user_of_the_definitions(services, definitions):
    users = {user["name"]: user for user in definitions["users"]}
    for name, setting, url in broker_urls(services):
        assert url.username in users, (name, setting)
        assert rabbitmq_password_matches(users[url.username], url.password), (name, setting)
        assert url.path == "//"
    assert "guest" not in users


def test_each_broker_url_is_granted_its_roles_permissions_and_nothing_else(services, definitions):
    from messaging.topology import broker_permissions

    expected = broker_permissions()
    granted = {(entry["user"], entry["vhost"]): entry for entry in definitions["permissions"]}
    for _, setting, url in broker_urls(services):
        entry = granted[(url.username, "/")]
        role = expected[ROLE_OF_URL[setting]]
        assert (entry["configure"], entry["write"], entry["read"]) == (role.configure, role.write, role.read)
    administrators = {user["name"] for user in definitions["users"] if "administrator" in user["tags"]}
    assert not administrators & {url.username for _, _, url in broker_urls(services)}


def test_the_definitions_declare_the_topology_the_code_declares(definitions):
    from messaging.topology import build_topology

    topology = build_topology("")
    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    for exchange in (topology.events, topology.dead_letter_exchange):
        assert (exchanges[exchange.name]["type"], exchanges[exchange.name]["durable"]) == (exchange.type, True)
    queues = {q["name"]: q for q in definitions["queues"]}
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]}
    for queue in topology.all_queues():
        assert queues[queue.name]["arguments"] == queue.queue_arguments
        assert queues[queue.name]["durable"] is True
        assert (queue.exchange.name, queue.name, queue.routing_key) in bindings
    assert set(queues) == {queue.name for queue in topology.all_queues()}


def test_every_compose_command_names_an_existing_management_command(services):
    known = get_commands()
    for name in MANAGE_PY_SERVICES:
        command = management_command(command_words(services[name]["command"]))
        assert command in known, f"{name} runs an unknown management command {command!r}"


def test_compose_runs_migrate_web_relay_and_consumer(services):
    assert command_words(services["migrate"]["command"])[2:] == ["migrate", "--noinput"]
    assert command_words(services["web"]["command"]) == [
        "gunicorn",
        "--config",
        "config/gunicorn.py",
        "config.wsgi:application",
    ]
    assert command_words(services["relay"]["command"])[2:] == ["relay"]
    assert command_words(services["consumer"]["command"])[2:] == ["consume_notifications"]


def test_every_procfile_command_names_an_existing_management_command():
    known = get_commands()
    entries = procfile_commands()
    assert set(entries) == {"web", "relay", "consumer"}
    for name, words in entries.items():
        command = management_command(words)
        assert command in known, f"Procfile's {name} runs an unknown management command {command!r}"


def test_web_and_rabbitmq_publish_their_ports(services):
    assert services["web"]["ports"] == ["8000:8000"]
    assert services["rabbitmq"]["ports"] == ["5672:5672", "15672:15672"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["postgres"]["image"] == "postgres:15"


def test_postgres_and_rabbitmq_have_healthchecks_and_keep_their_data(compose, services):
    assert "pg_isready" in " ".join(command_words(services["postgres"]["healthcheck"]["test"]))
    assert command_words(services["rabbitmq"]["healthcheck"]["test"])[-3:] == ["rabbitmq-diagnostics", "-q", "ping"]
    volume = services["postgres"]["volumes"][0].split(":")
    assert volume[0] in compose["volumes"]
    assert volume[1] == "/var/lib/postgresql/data"


def test_migrate_waits_for_healthy_postgres_and_apps_for_migrate_and_healthy_rabbitmq(services):
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in LONG_RUNNING_APP_SERVICES:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "rabbitmq": {"condition": "service_healthy"},
        }


# --- The web process under gunicorn ---------------------------------------------------------


def web_environment(services, tmp_path) -> dict[str, str]:
    environment = {**os.environ, **{key: str(value) for key, value in services["web"]["environment"].items()}}
    # The container's directory does not exist here; gunicorn's config would create it.
    environment["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
    environment["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return environment


def test_gunicorn_loads_its_config_and_the_web_application_with_the_compose_environment(services, tmp_path):
    words = command_words(services["web"]["command"])
    config = words[words.index("--config") + 1]
    assert (ROOT / config).is_file()

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", *words[1:]],
        cwd=ROOT,
        env=web_environment(services, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_web_port_is_gunicorns_and_its_healthcheck_asks_healthz(services):
    config = (ROOT / "config" / "gunicorn.py").read_text()
    assert re.search(r'^bind = "0\.0\.0\.0:8000"$', config, re.MULTILINE)
    healthcheck = " ".join(command_words(services["web"]["healthcheck"]["test"]))
    url = urlsplit(re.search(r"http://[^'\" ]+", healthcheck).group())
    assert (url.hostname, url.port) == ("127.0.0.1", 8000)
    assert resolve(url.path).url_name == "healthz"


def test_the_image_collects_static_files_for_whitenoise():
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [command] = [line for line in dockerfile.splitlines() if line.startswith("RUN ") and "collectstatic" in line]
    words = shlex.split(command.removeprefix("RUN "))
    environment = dict(word.split("=", 1) for word in words[: words.index("python")])
    assert words[words.index("python") :] == ["python", "manage.py", "collectstatic", "--noinput"]
    # Unset, the settings would make the embedded broker's folders inside the image.
    assert urlsplit(environment["DATABASE_URL"]).scheme == "postgres"
    assert urlsplit(environment["BROKER_URL"]).scheme == "amqp"
    requirements = (ROOT / "requirements.txt").read_text().split()
    assert any(line.startswith("gunicorn==") for line in requirements)
    assert any(line.startswith("whitenoise==") for line in requirements)


def test_every_mounted_file_exists(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


# --- Prometheus -------------------------------------------------------------------------------


def mount_target(service: dict, source: str) -> str:
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")


@pytest.fixture(scope="module")
def prometheus_config() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())


@pytest.fixture(scope="module")
def scrape_jobs(prometheus_config) -> dict:
    return {job["job_name"]: job for job in prometheus_config["scrape_configs"]}


def test_prometheus_reads_the_config_in_the_repository(services):
    prometheus = services["prometheus"]
    target = mount_target(prometheus, "./deploy/prometheus/prometheus.yml")
    assert f"--config.file={target}" in prometheus["command"]


def test_prometheus_scrapes_the_web_metrics_endpoint_with_its_token(services, scrape_jobs):
    web = scrape_jobs["web"]
    [target] = web["static_configs"][0]["targets"]
    host, port = target.split(":")

    assert host == "web"
    assert services["web"]["ports"] == [f"{port}:{port}"]
    assert resolve(web["metrics_path"]).url_name == "metrics"
    assert web["authorization"]["type"] == "Bearer"
    assert web["authorization"]["credentials"] == services["web"]["environment"]["METRICS_TOKEN"]
    assert host in services["web"]["environment"]["ALLOWED_HOSTS"].split(",")


@pytest.mark.parametrize(
    ("job", "port_variable"), [("relay", "RELAY_METRICS_PORT"), ("consumer", "CONSUMER_METRICS_PORT")]
)
def test_prometheus_scrapes_every_worker_container_on_its_metrics_port(services, scrape_jobs, job, port_variable):
    environment = services[job]["environment"]
    [discovery] = scrape_jobs[job]["dns_sd_configs"]

    assert discovery["names"] == [job]
    assert discovery["type"] == "A"
    assert discovery["port"] == int(environment[port_variable]) > 0
    assert services[job]["expose"] == [environment[port_variable]]
    # Reachable from the Prometheus container, not only from inside the worker's own.
    assert environment["WORKER_METRICS_ADDRESS"] == "0.0.0.0"  # noqa: S104
    assert scrape_jobs[job].get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_scrapes_exactly_the_processes_that_serve_metrics(scrape_jobs):
    assert set(scrape_jobs) == set(LONG_RUNNING_APP_SERVICES)


# --- Grafana ----------------------------------------------------------------------------------

GRAFANA = ROOT / "deploy" / "grafana"
# Series Prometheus makes itself, not our code.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "clamp_min",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
}  # fmt: skip


def promql_metric_names(expression: str) -> set[str]:
    """The series an expression selects: what is left once strings, matchers, ranges, label
    lists, functions and keywords are taken out."""
    expression = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    expression = re.sub(r"\{[^}]*\}", "", expression)
    expression = re.sub(r"\[[^\]]*\]", "", expression)
    expression = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expression)
    words = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expression)
    return {word for word in words if word not in PROMQL_WORDS}


def exported_series() -> set[str]:
    """Every series name our code exports, from the registries, after importing every metrics module."""
    from prometheus_client import REGISTRY

    import messaging.metrics  # noqa: F401
    import outbox.metrics
    import relay.metrics  # noqa: F401

    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",)}
    families = [*REGISTRY.collect(), *outbox.metrics.BacklogCollector().describe()]
    return {family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "outbox.json").read_text())


def dashboard_expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_promql_reader_finds_series_and_skips_the_rest():
    expression = 'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{job="x"}[$__rate_interval]))) / b_total'

    assert promql_metric_names(expression) == {"a_seconds_bucket", "b_total"}


def test_every_series_on_the_dashboard_is_one_our_code_exports(dashboard):
    exported = exported_series() | PROMETHEUS_SERIES
    used = set().union(*map(promql_metric_names, dashboard_expressions(dashboard)))

    assert used, "the dashboard queries nothing"
    assert used <= exported, f"the dashboard queries series nobody exports: {sorted(used - exported)}"


def test_the_dashboard_shows_every_metric_operators_asked_for(dashboard):
    used = set().union(*map(promql_metric_names, dashboard_expressions(dashboard)))

    assert {
        "outbox_pending_events",
        "outbox_oldest_pending_age_seconds",
        "outbox_dead_events",
        "outbox_events_appended_total",
        "outbox_events_published_total",
        "outbox_publish_failures_total",
        "outbox_events_dead_total",
        "relay_batch_size_events_bucket",
        "relay_publish_confirm_seconds_bucket",
        "outbox_end_to_end_latency_seconds_bucket",
        "outbox_consumer_events_processed_total",
        "outbox_consumer_duplicates_total",
        "outbox_consumer_dead_lettered_total",
    } <= used
    quantiles = " ".join(dashboard_expressions(dashboard))
    for histogram in ("relay_publish_confirm_seconds_bucket", "outbox_end_to_end_latency_seconds_bucket"):
        for quantile in ("0.5", "0.99"):
            assert re.search(rf"histogram_quantile\({quantile},[^;]*{histogram}", quantiles), (histogram, quantile)


def test_grafana_provisions_the_prometheus_datasource_the_dashboard_uses(services, dashboard):
    grafana = services["grafana"]
    provisioning = mount_target(grafana, "./deploy/grafana/provisioning")
    assert provisioning == "/etc/grafana/provisioning"
    [datasource] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    assert (url.hostname, f"{url.port}:{url.port}") == ("prometheus", services["prometheus"]["ports"][0])
    used = {
        item["datasource"]["uid"]
        for panel in dashboard["panels"]
        for item in [panel, *panel.get("targets", [])]
        if "datasource" in item
    }
    assert used == {datasource["uid"]}


def test_app_services_send_traces_to_jaeger_and_grafana_links_latency_exemplars_to_them(compose, services, dashboard):
    endpoint = urlsplit(compose["x-app-environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    jaeger = services["jaeger"]
    assert endpoint.hostname == "jaeger"
    assert str(endpoint.port) in jaeger["expose"]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    names = {services[name]["environment"]["OTEL_SERVICE_NAME"] for name in LONG_RUNNING_APP_SERVICES}
    assert names == set(LONG_RUNNING_APP_SERVICES)
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    datasources = GRAFANA / "provisioning" / "datasources"
    [traces] = yaml.safe_load((datasources / "jaeger.yml").read_text())["datasources"]
    assert urlsplit(traces["url"]).hostname == "jaeger"
    assert f"{urlsplit(traces['url']).port}:{urlsplit(traces['url']).port}" in jaeger["ports"]
    [metrics] = yaml.safe_load((datasources / "prometheus.yml").read_text())["datasources"]
    assert metrics["jsonData"]["exemplarTraceIdDestinations"] == [{"name": "trace_id", "datasourceUid": traces["uid"]}]
    [latency] = [panel for panel in dashboard["panels"] if panel.get("title", "").startswith("End-to-end latency")]
    assert all(target["exemplar"] for target in latency["targets"])


def test_grafana_loads_the_dashboard_from_the_mounted_directory(services):
    grafana = services["grafana"]
    [provider] = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "outbox.yml").read_text())["providers"]
    dashboards = mount_target(grafana, "./deploy/grafana/dashboards")

    assert provider["options"]["path"] == dashboards
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards + "/")
    assert (GRAFANA / "dashboards" / Path(home).name).is_file()


def test_the_scrape_config_for_scripts_run_targets_its_default_ports():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "scripts-run.yml").read_text())
    defaults = dict(re.findall(r'(\w+_PORT)="\$\{\1:-(\d+)\}"', (ROOT / "scripts" / "run").read_text()))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}

    assert targets == {
        "web": [f"127.0.0.1:{defaults['WEB_PORT']}"],
        "relay": [f"127.0.0.1:{defaults['RELAY_METRICS_PORT']}"],
        "consumer": [f"127.0.0.1:{defaults['CONSUMER_METRICS_PORT']}"],
    }


# postgres:15's defaults; the compose service leaves them as they are (asserted below).
POSTGRES_MAX_CONNECTIONS = 100
POSTGRES_SUPERUSER_RESERVED_CONNECTIONS = 3


SETTING = "__import__('django.conf').conf.settings.{name}"


def read_in(environment: dict[str, str], expression: str) -> str:
    """`expression` printed by a Python process with `environment` (settings or gunicorn's config)."""
    result = subprocess.run(
        [sys.executable, "-c", f"print({expression})"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def pool_size_of(services, name: str, tmp_path) -> int:
    environment = {
        **web_environment(services, tmp_path),
        **{k: str(v) for k, v in services[name]["environment"].items()},
    }
    return int(read_in(environment, SETTING.format(name="DATABASE_POOL_MAX_SIZE")))


def test_the_stack_at_its_busiest_stays_under_postgresqls_max_connections(services, tmp_path):
    # docs/web-capacity.md: every web worker's pool full and each of its threads running /readyz
    # (its own session), the relay's pool and its LISTEN session, the consumer's pool, migrate.
    assert "max_connections" not in " ".join(command_words(services["postgres"].get("command", [])))
    words = command_words(services["web"]["command"])
    assert "--workers" not in words, "count the command line's workers here"
    assert "--threads" not in words, "count the command line's threads here"
    gunicorn = read_in(
        web_environment(services, tmp_path),
        "(lambda c: (c['workers'], c['threads']))(__import__('runpy').run_path('config/gunicorn.py'))",
    )
    workers, threads = (int(number) for number in gunicorn.strip("()").split(","))
    web_pool = pool_size_of(services, "web", tmp_path)
    assert web_pool >= 1, "the web's connections must be bounded by a pool"

    busiest = (
        workers * (web_pool + threads)
        + pool_size_of(services, "relay", tmp_path)
        + 1
        + pool_size_of(services, "consumer", tmp_path)
        + 1
    )

    assert busiest <= POSTGRES_MAX_CONNECTIONS - POSTGRES_SUPERUSER_RESERVED_CONNECTIONS
