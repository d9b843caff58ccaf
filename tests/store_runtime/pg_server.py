"""A real PostgreSQL server for the tests: Debian's server binaries (`apt-get install postgresql`),
a cluster made in a temporary folder, listening on 127.0.0.1 only at a free port, stopped and
removed when the tests end. The fixtures are in conftest.py beside this file.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user (made by
the Debian package; `nobody` otherwise) and the server runs as that user, started directly with
no `su` in between so that the signal that stops it reaches it. Durability is switched off
(`fsync=off`): a test's cluster is thrown away, and what is tested is locking and transactions,
which do not depend on it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "PgUnavailable", "find_bin", "start_pg_server"]

PG_BIN_GLOB = "lib/postgresql/*/bin"
START_TIMEOUT_S = 30.0


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (the tests that need one are skipped)."""


def find_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = [p for p in Path("/usr").glob(PG_BIN_GLOB) if (p / "initdb").is_file() and (p / "postgres").is_file()]
    if not found:
        raise PgUnavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
                            "(apt-get install postgresql, or set WALKOUT_TEST_POSTGRES_URL)")
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running server; `url` reaches its `postgres` database as the superuser `postgres`."""

    url: str
    port: int
    folder: Path
    process: subprocess.Popen

    def log(self) -> str:
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open connections are cut, no waiting for clients), then the folder goes."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _owner() -> pwd.struct_passwd | None:
    """Whom the cluster belongs to: None (this user) unless we are root, whom PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PgUnavailable("running as root and there is neither a postgres nor a nobody user to run PostgreSQL as")


def start_pg_server() -> PgServer:
    """initdb in a new temporary folder, then the server on 127.0.0.1 at a free port, answering.

    Raises PgUnavailable when the binaries are missing, RuntimeError (with the server's log) when
    they are there but the server does not come up.
    """
    bin_dir = find_bin()
    owner = _owner()
    as_owner: dict = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    folder = Path(tempfile.mkdtemp(prefix="walkout-pg-"))
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        subprocess.run([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"],
                       cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=True, **as_owner)
        port = free_port()
        log = (folder / "postgres.log").open("w")
        if owner is not None:
            os.chown(folder / "postgres.log", owner.pw_uid, owner.pw_gid)
        process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(folder / "data"), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **as_owner)
        log.close()
    except subprocess.CalledProcessError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({e.returncode}): {e.stderr or e.stdout}") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    server = PgServer(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", port, folder, process)
    try:
        _wait_ready(server)
    except BaseException:
        log_text = server.log()
        server.stop()
        raise RuntimeError(f"PostgreSQL in {folder} did not come up:\n{log_text[-3000:]}") from None
    return server


def _wait_ready(server: PgServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.process.returncode}")
        try:
            psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres",
                            connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
