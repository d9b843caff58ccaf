"""A real NATS server with JetStream for the bus tests: Debian's `nats-server` (apt-get install
nats-server) on 127.0.0.1 at a free port, its JetStream files in a folder the test owns, so that it
can be stopped and started again on the same port and keep its streams, as a broker restart does."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from store_runtime.bench_load import free_port

__all__ = ["NatsCluster", "NatsServer"]

START_TIMEOUT_S = 10.0


class NatsServer:
    """`start()` / `stop()` a nats-server keeping its JetStream store in `folder / "js"`."""

    def __init__(self, folder: Path, binary: str | None = None, extra: Sequence[str] = ()) -> None:
        self.binary = binary or shutil.which("nats-server") or "nats-server"
        self.folder = folder
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.extra = list(extra)  # more command-line options (a cluster's)
        self.process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "nats-server.log"

    def start(self) -> NatsServer:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.folder / "js"),
                 *self.extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nats-server did not listen within {START_TIMEOUT_S} s:\n"
                                       f"{self.log()[-3000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): JetStream writes its state, clients see the connection close."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""


class NatsCluster:
    """Three nats-servers routed to each other on 127.0.0.1 (cluster `walkout`, servers n1..n3), each
    with its own JetStream folder: what deploy/compose.yaml runs on three machines."""

    def __init__(self, folder: Path, binary: str | None = None, size: int = 3) -> None:
        routes = [free_port() for _ in range(size)]
        route_urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
        self.servers = [
            NatsServer(folder / f"n{i + 1}", binary,
                       extra=["--server_name", f"n{i + 1}", "--cluster_name", "walkout",
                              "--cluster", f"nats://127.0.0.1:{routes[i]}", "--routes", route_urls])
            for i in range(size)]
        self.url = ",".join(s.url for s in self.servers)

    def start(self) -> NatsCluster:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def named(self, name: str) -> NatsServer:
        return self.servers[int(name.removeprefix("n")) - 1]
