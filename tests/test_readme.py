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


def test_readme_run_command_starts_the_console_script_the_package_declares() -> None:
    run_command = next(c for c in readme_commands() if "pytest" not in c)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'aitrader-relay = "adapters.main:cli"' in pyproject
    assert run_command.endswith("aitrader-relay run")


def test_procfile_runs_the_relay_worker() -> None:
    assert (ROOT / "Procfile").read_text().strip() == "worker: aitrader-relay run"


def test_env_example_lists_every_core_setting() -> None:
    from relay.config import RelaySettings

    example = (ROOT / ".env.example").read_text()
    missing = [name.upper() for name in RelaySettings.model_fields if f"{name.upper()}=" not in example]
    assert missing == []
