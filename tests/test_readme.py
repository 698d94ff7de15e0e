"""CI must run exactly the README's set-up commands; this keeps the two from drifting apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    commands = readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci
    assert "'.[test]'" in test_command  # installs the test extras, not only the package


def test_readme_first_command_installs_and_starts_the_demo_then_run_follows() -> None:
    """A newcomer's first command must leave something running without any token: the demo.
    `run` (which needs a bot token) comes right after it."""
    commands = readme_commands()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'aitrader-relay = "adapters.main:cli"' in pyproject
    assert commands[0].startswith("python3 -m venv .venv && .venv/bin/pip install . ")
    assert commands[0].endswith("aitrader-relay demo")
    assert commands[1].endswith("aitrader-relay run")
    assert "cp .env.example .env" in commands[1]


def test_every_declared_dependency_is_imported_somewhere() -> None:
    """A declared but unused dependency (aiolimiter was one) only costs installs and audits."""
    import re as _re

    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    names = _re.findall(r'"([A-Za-z0-9_.-]+)', block)
    import_names = {
        "python-telegram-bot": "telegram",
        "discord.py": "discord",
        "prometheus-client": "prometheus_client",
        "pydantic-settings": "pydantic_settings",
    }
    sources = "\n".join(p.read_text() for d in ("relay", "adapters", "aitrader_sim") for p in (ROOT / d).rglob("*.py"))
    # Data-only packages that the standard library reads (zoneinfo falls back to tzdata).
    data_only = {"tzdata"}
    # httpcore imports sniffio on every request (a failed import each time without it).
    data_only.add("sniffio")
    # Floors for transitive dependencies with published advisories (pyproject says which).
    data_only |= {"h11", "aiohttp", "pillow", "idna", "certifi"}
    for name in (n for n in names if n not in data_only):
        module = import_names.get(name, name.lower().replace("-", "_"))
        assert _re.search(rf"^\s*(import|from) {module}\b", sources, _re.M), f"{name} is declared but never imported"


def test_procfile_runs_the_relay_worker() -> None:
    assert (ROOT / "Procfile").read_text().strip() == "worker: aitrader-relay run"


def test_env_example_lists_every_core_setting() -> None:
    from relay.config import RelaySettings

    example = (ROOT / ".env.example").read_text()
    missing = [name.upper() for name in RelaySettings.model_fields if f"{name.upper()}=" not in example]
    assert missing == []
