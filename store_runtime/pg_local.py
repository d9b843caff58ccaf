"""A throwaway PostgreSQL server on this machine: Debian's server binaries (`apt-get install
postgresql`), a cluster made in a new temporary folder, listening on 127.0.0.1 only at a free port,
stopped and its folder removed when done. `walkout bench load --start-postgres` and the tests'
PostgreSQL fixtures (tests/store_runtime/conftest.py) both run one.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user (made by
the Debian package; `nobody` otherwise) and the server runs as that user, started directly with
no `su` in between so that the signal that stops it reaches it.

`durable` says whether the server keeps its durability (fsync, synchronous commits, full page
writes). The bench keeps it on: it measures what a store would run. The tests switch it off: a
test's cluster is thrown away, and what is tested is locking and transactions, which do not
depend on it.

| raises | when |
|---|---|
| `PgUnavailable` | no server binaries, or root with no user to run the server as |
| `PgStartError` | initdb fails, or the server exits or does not answer (its log's tail in the message) |
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalPg", "PgStartError", "PgUnavailable", "find_bin", "local_pg", "start_local_pg"]

PG_BIN_GLOB = "lib/postgresql/*/bin"
START_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 3000
# Room for the pools of several `walkout serve` processes (the bench) and the tests' threads.
MAX_CONNECTIONS = 200
NOT_DURABLE = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be run here: its binaries are missing, or nobody to run it as."""


class PgStartError(RuntimeError):
    """The binaries are there but the server did not come up (initdb failed, or it did not answer)."""


def find_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = [p for p in Path("/usr").glob(PG_BIN_GLOB) if (p / "initdb").is_file() and (p / "postgres").is_file()]
    if not found:
        raise PgUnavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the servers the tests and benches start listen there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPg:
    """A running server; `url` reaches its `postgres` database as the superuser `postgres`."""

    url: str
    port: int
    folder: Path
    bin_dir: Path
    process: subprocess.Popen

    @property
    def version(self) -> str:
        """The major version, as its bin folder names it."""
        return self.bin_dir.parent.name

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


def start_local_pg(*, durable: bool, timeout_s: float = START_TIMEOUT_S) -> LocalPg:
    """initdb in a new temporary folder, then the server on 127.0.0.1 at a free port, answering.
    The caller stops it (`stop()`); `local_pg` does so at the end of a block."""
    import psycopg  # noqa: F401  (the readiness check needs it: missing, nothing is started)

    bin_dir = find_bin()
    owner = _owner()
    as_owner: dict[str, Any] = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid,
                                                         "extra_groups": []}
    folder = Path(tempfile.mkdtemp(prefix="walkout-pg-"))
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        done = subprocess.run([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "--auth=trust",
                               "-E", "UTF8", "--locale=C", "--no-sync"],
                              cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
                              **as_owner)
        if done.returncode != 0:
            raise PgStartError(f"initdb failed ({done.returncode}): {(done.stderr or done.stdout)[-LOG_TAIL_CHARS:]}")
        port = free_port()
        log_path = folder / "postgres.log"
        with log_path.open("w") as out:
            if owner is not None:
                os.chown(log_path, owner.pw_uid, owner.pw_gid)
            process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(folder / "data"), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                 "-c", f"max_connections={MAX_CONNECTIONS}", *(() if durable else NOT_DURABLE)],
                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **as_owner)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    server = LocalPg(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", port, folder, bin_dir, process)
    try:
        _wait_ready(server, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def local_pg(*, durable: bool, timeout_s: float = START_TIMEOUT_S) -> Iterator[LocalPg]:
    """`start_local_pg` for the length of the block, stopped and removed afterwards."""
    server = start_local_pg(durable=durable, timeout_s=timeout_s)
    try:
        yield server
    finally:
        server.stop()


def _wait_ready(server: LocalPg, timeout_s: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise PgStartError(f"postgres in {server.folder} exited with {server.process.returncode}:\n"
                               f"{server.log()[-LOG_TAIL_CHARS:]}")
        try:
            psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres",
                            connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise PgStartError(f"nothing answered on 127.0.0.1:{server.port} within {timeout_s:g} s:\n"
                                   f"{server.log()[-LOG_TAIL_CHARS:]}") from None
            time.sleep(0.1)
