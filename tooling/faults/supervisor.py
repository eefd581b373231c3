"""Worker processes under a supervisor that can kill them at will and brings them back."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from outbox.broker import require_amqp


def current_database_url() -> str:
    """A DATABASE_URL for worker processes that points at this process's database."""
    from django.db import connection

    params = connection.settings_dict
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    # A Unix socket folder (the embedded PostgreSQL's) is a host only when percent-encoded.
    host = quote(params["HOST"], safe="") if params["HOST"].startswith("/") else params["HOST"]
    return f"postgres://{params['USER']}{password}@{host}:{params['PORT']}/{params['NAME']}"


class WorkerProcess:
    """One `manage.py <command>` process; its output goes to a log file per incarnation."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.log_paths: list[Path] = []

    def start(self) -> None:
        log_path = self.log_dir / f"{self.name}.{self.starts}.log"
        self.log_paths.append(log_path)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own manage.py, fixed arguments
                [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *self.command],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, no transaction commits, no ack is sent."""
        if self.alive:
            self.process.kill()
            self.process.wait()

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; the exit code, or None if it had to be killed."""
        if not self.alive:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.log_paths if path.exists())


class Supervisor:
    """Starts workers, kills one at random on request, and restarts any that died."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        # Kills and broker cuts prove RabbitMQ's guarantees (confirms, redelivery of unacked
        # deliveries); a serverless transport has none of them to prove.
        require_amqp("the fault supervisor", env.get("BROKER_URL") or settings.BROKER_URL)
        self.log_dir = log_dir
        self.env = env
        self.workers: list[WorkerProcess] = []
        self.kills = 0
        self.deaths = 0

    def add(self, name: str, command: list[str], env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(name, command, {**self.env, **(env or {})}, self.log_dir)
        worker.start()
        self.workers.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker.alive:
                worker.kill()
                self.kills += 1

    def kill_one(self, rng: random.Random, kinds: tuple[str, ...] = ()) -> WorkerProcess | None:
        """SIGKILL one running worker, picked at random among those whose name starts with `kinds`."""
        alive = [worker for worker in self.workers if worker.alive and worker.name.startswith(kinds or ("",))]
        if not alive:
            return None
        victim = rng.choice(alive)
        victim.kill()
        self.kills += 1
        return victim

    def restart_dead(self, env_overrides: dict[str, str] | None = None) -> int:
        """Start again every worker that is not running (killed, or died at a failpoint)."""
        restarted = 0
        for worker in self.workers:
            if not worker.alive:
                if worker.process is not None and worker.process.returncode == -signal.SIGKILL:
                    self.deaths += 1
                if env_overrides:
                    worker.env = {**worker.env, **env_overrides}
                worker.start()
                restarted += 1
        return restarted

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every worker; their exit codes by name."""
        return {worker.name: worker.terminate() for worker in self.workers}
