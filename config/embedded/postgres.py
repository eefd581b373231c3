"""The embedded PostgreSQL: a real PostgreSQL server from the `pgserver` wheel, in a local folder.

Used when DATABASE_URL is unset, so the service runs on a bare machine. It is the same
PostgreSQL as in production (triggers, LISTEN/NOTIFY, FOR UPDATE SKIP LOCKED), version 16 as
the wheel ships it, listening only on a Unix socket in its data folder (no TCP port, so it never
meets a system PostgreSQL on 5432).

What pgserver does, as checked on our machine (pgserver 0.1.4):
- Several processes share one server per data folder: the first to start creates and starts
  it, the others find its `postmaster.pid` and connect. Its own inter-process lock covers that,
  but processes starting a fresh folder at once can still fail in `initdb`, so our start-up is
  serialised by a lock of our own as well.
- Run as root, it creates a system user `pgserver` (`useradd`), gives it the data folder and
  opens the folders above it and the wheel's binaries to reading by others: PostgreSQL refuses
  to run as root.
- Left to itself it stops the server when the last process that started it exits, counted
  through a list of process ids in the data folder; a process killed by a signal (honcho's
  SIGTERM to runserver, a SIGKILL) never leaves that list, and the server then never stops. So
  every process starts it with `cleanup_mode=None` and the one who owns the run stops it:
  `scripts/run` on exit when it started it (`manage.py embedded_postgres stop`), the tests after
  their module. A command run on its own that starts it says so, and leaves it running.

Nothing starts at import: the server starts on the first database connection
(`config.embedded.database`, the ENGINE the settings name) or from `scripts/run`.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

# The database the service uses; initdb creates it.
DATABASE = "postgres"
USER = "postgres"

logger = logging.getLogger(__name__)


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be started or stopped."""


def start(data_dir: Path) -> bool:
    """Start the embedded PostgreSQL in `data_dir` unless it runs already; True when this call started it."""
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _start_lock(data_dir), warnings.catch_warnings():
        if is_running(data_dir):
            return False
        # platformdirs warns on every start when XDG_RUNTIME_DIR is unset; its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver

        try:
            pgserver.get_server(data_dir, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            raise EmbeddedPostgresError(
                f"cannot start the embedded PostgreSQL in {data_dir}: {type(exc).__name__}: {exc} "
                f"(its log: {data_dir / 'log'})"
            ) from exc
    return True


def url_for(socket_dir: Path | str, *, port: int | None = None) -> str:
    """The database URL of a server listening on a Unix socket in `socket_dir`.

    The folder is the URL's host, percent-encoded, as dj-database-url and psycopg read it:
    postgres://postgres@%2Fpath%2Fto%2Fpgdata/postgres.
    """
    host = quote(str(socket_dir), safe="")
    return f"postgres://{USER}@{host}{f':{port}' if port else ''}/{DATABASE}"


def running_url(data_dir: Path) -> str | None:
    """The database URL of the server running in `data_dir` and ready for connections, or None; starts nothing."""
    info = _postmaster_info(Path(data_dir).resolve())
    if info is None or not info.is_running() or info.status != "ready" or info.socket_dir is None:
        return None
    return url_for(info.socket_dir, port=info.port)


def stop(data_dir: Path) -> bool:
    """Stop the server running in `data_dir` (a fast shutdown); False when none was running."""
    data_dir = Path(data_dir).resolve()
    with _start_lock(data_dir):
        if not is_running(data_dir):
            return False
        from pgserver._commands import pg_ctl

        try:
            # As the user that owns the data folder (pgserver's when we are root).
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=data_dir.stat().st_uid)
        except subprocess.SubprocessError as exc:
            raise EmbeddedPostgresError(f"cannot stop the embedded PostgreSQL in {data_dir}: {exc}") from exc
    return True


def is_running(data_dir: Path) -> bool:
    """Whether a server runs in `data_dir`; starts nothing."""
    info = _postmaster_info(Path(data_dir).resolve())
    return info is not None and info.is_running()


def _postmaster_info(data_dir: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(data_dir)
    except (OSError, ValueError, AssertionError):
        # A postmaster.pid being written or left half-written by a crash: not a running server.
        return None


@contextmanager
def _start_lock(data_dir: Path):
    # Next to the data folder, not in it: the folder may not exist yet, and pgserver hands it
    # to another user when we are root.
    with open(data_dir.parent / f".{data_dir.name}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
