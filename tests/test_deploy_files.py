"""The deploy files say what the relay needs, and the container ones work where Docker does.

Static checks run everywhere. The Docker tests build the image, run it until its HEALTHCHECK
reports healthy, and bring the compose project (relay + Valkey with persistence) up; they are
skipped, with the reason, where no Docker daemon answers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import RelaySettings
from relay.embedded_redis import connect
from relay.tokens import TokenBox

ROOT = Path(__file__).resolve().parents[1]


def read(name: str) -> str:
    return (ROOT / name).read_text()


# --- Dockerfile and compose, as text ----------------------------------------------------------------


def test_dockerfile_is_slim_non_root_with_a_data_volume_and_a_healthcheck() -> None:
    docker = read("Dockerfile")
    (base,) = re.findall(r"^FROM (\S+)", docker, re.M)
    assert re.fullmatch(r"python:3\.\d+-slim", base), base
    python = read(".python-version").strip()
    assert base == f"python:{python}-slim"  # the buildpack and the image run the same Python
    user = re.findall(r"^USER (\S+)", docker, re.M)
    assert user and user[-1] not in ("root", "0")
    assert 'VOLUME ["/data"]' in docker and "RELAY_DATA_DIR=/data" in docker
    (check,) = re.findall(r"^HEALTHCHECK .*\n\s+CMD (.+)$", docker, re.M)
    assert "/healthz" in check
    assert re.search(r'^CMD \["aitrader-relay", "run"\]$', docker, re.M)  # exec form: SIGTERM reaches the relay


def test_compose_runs_the_relay_on_a_persistent_non_evicting_valkey() -> None:
    compose = read("compose.yaml")
    assert "appendonly" in compose and '"yes"' in compose
    assert '"--maxmemory-policy", "noeviction"' in compose
    assert "valkey-data:/data" in compose
    assert "REDIS_URL: redis://valkey:6379/0" in compose
    assert "condition: service_healthy" in compose
    assert "RELAY_SECRET_KEY: ${RELAY_SECRET_KEY:?" in compose  # required with REDIS_URL, as `check` says


# --- buildpack and app.json ---------------------------------------------------------------------------


def test_buildpack_files_recognise_the_app_and_pin_a_python_the_package_accepts() -> None:
    assert [line for line in read("requirements.txt").splitlines() if not line.startswith("#")] == ["."]
    pyproject = tomllib.loads(read("pyproject.toml"))
    minimum = pyproject["project"]["requires-python"]
    assert minimum == ">=3.11"
    major, minor = (int(p) for p in read(".python-version").strip().split("."))
    assert (major, minor) >= (3, 11)
    assert read("Procfile").strip() == "worker: aitrader-relay run"


def test_app_json_provisions_redis_generates_a_usable_key_and_names_real_settings() -> None:
    app = json.loads(read("app.json"))
    assert any(a["plan"].startswith("heroku-redis") for a in app["addons"])
    assert app["env"]["RELAY_SECRET_KEY"]["generator"] == "secret"
    # Heroku's "secret" generator makes 64 hex characters: the relay must take that as its key.
    generated = secrets.token_hex(32)
    box = TokenBox.from_text(generated)
    assert box.open(box.seal("tok", 1), 1) == "tok"
    example = read(".env.example")
    for name in app["env"]:
        assert f"\n{name}=" in example, f"app.json sets {name}, which .env.example does not list"
    assert set(app["formation"]) <= {line.split(":")[0] for line in read("Procfile").splitlines()}
    # The value app.json sets is one the settings accept.
    settings = RelaySettings(_env_file=None, redis_ssl_cert_reqs=app["env"]["REDIS_SSL_CERT_REQS"]["value"])
    assert settings.redis_ssl_cert_reqs == "none"


def test_the_certificate_setting_reaches_rediss_connections_only() -> None:
    tls = connect("rediss://:pw@127.0.0.1:6380/0", ssl_cert_reqs="none")
    plain = connect("redis://127.0.0.1:6379/0", ssl_cert_reqs="none")  # a plain connection takes no TLS option
    assert tls.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert "ssl_cert_reqs" not in plain.connection_pool.connection_kwargs


# --- with a Docker daemon -----------------------------------------------------------------------------


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker daemon answers (docker info: {last[:150]})"
    return None


docker_required = pytest.mark.skipif(bool(_docker_unavailable()), reason=_docker_unavailable() or "")


def docker(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    tag = f"aitrader-relay-test:{uuid.uuid4().hex[:8]}"
    built = docker("build", "-t", tag, ".")
    assert built.returncode == 0, built.stderr[-3000:]
    yield tag
    docker("rmi", "-f", tag)


def wait_health(container: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        if status in ("healthy", "unhealthy"):
            return status
        time.sleep(1)
    return status


@docker_required
def test_the_image_runs_as_its_user_and_becomes_healthy(image: str) -> None:
    name = f"relay-{uuid.uuid4().hex[:8]}"
    # --console with no terminal: the relay runs on the embedded store without a bot token.
    started = docker("run", "-d", "--name", name, "-i", image, "aitrader-relay", "run", "--console")
    assert started.returncode == 0, started.stderr
    try:
        assert wait_health(name) == "healthy", docker("logs", name).stderr[-3000:]
        assert docker("exec", name, "id", "-u").stdout.strip() != "0"
        ready = docker("exec", name, "python", "-c", _GET % "/readyz")
        assert '"ready": true' in ready.stdout.replace('"ready":true', '"ready": true'), ready.stdout
    finally:
        docker("rm", "-f", name)


_GET = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080%s', timeout=5).read().decode())"


@docker_required
def test_compose_brings_the_relay_up_on_a_persistent_valkey(tmp_path: Path) -> None:
    project = f"relaytest{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RELAY_SECRET_KEY": secrets.token_hex(32), "COMPOSE_PROJECT_NAME": project}
    # The relay needs a platform; the console (stdin attached, never closed) serves when no token is set.
    override = tmp_path / "override.yaml"
    override.write_text(
        'services:\n  relay:\n    command: ["aitrader-relay", "run", "--console"]\n    stdin_open: true\n    ports: []\n'
    )
    files = ["-f", str(ROOT / "compose.yaml"), "-f", str(override)]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *files, *args],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env=env,
            cwd=ROOT,
        )

    up = compose("up", "-d", "--build")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        container = compose("ps", "-q", "relay").stdout.strip()
        assert wait_health(container) == "healthy", compose("logs").stdout[-3000:]
        policy = compose("exec", "-T", "valkey", "valkey-cli", "config", "get", "maxmemory-policy").stdout
        assert "noeviction" in policy
        aof = compose("exec", "-T", "valkey", "valkey-cli", "config", "get", "appendonly").stdout
        assert "yes" in aof
    finally:
        compose("down", "-v")
