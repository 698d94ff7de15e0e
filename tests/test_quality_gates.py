"""The lint, format and type gates pass with the settings in pyproject.toml, and each checker
really checks: a file with a deliberate finding is reported by the same checker and settings.

The checkers are the ones installed beside this Python (the `[test]` extra pins them), so the
README's test command runs them with the versions the code was checked with.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "pyproject.toml"


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed (pip install '.[test]')"
    return found


def run(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(name), *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def report(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


# --- the gates ------------------------------------------------------------------------------


def test_ruff_finds_nothing() -> None:
    done = run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, report(done)


def test_ruff_format_would_change_nothing() -> None:
    done = run("ruff", "format", "--no-cache", "--check", ".")
    assert done.returncode == 0, report(done)


def test_mypy_strict_finds_nothing() -> None:
    done = run("mypy")  # files, strictness and plugins all come from pyproject.toml
    assert done.returncode == 0, report(done)
    assert "Success: no issues found" in done.stdout, report(done)


# --- the checkers check ---------------------------------------------------------------------


def test_ruff_reports_a_deliberate_finding_with_the_projects_rules(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\n"  # F401, a default rule
        "\n\n"
        "def f(items: list[int] = []) -> list[int]:\n"  # B006: only with the project's rule set
        "    return items\n"
    )
    done = run("ruff", "check", "--no-cache", "--config", str(CONFIG), str(bad))
    assert done.returncode == 1, report(done)
    assert "F401" in done.stdout and "B006" in done.stdout, report(done)


def test_ruff_format_reports_a_file_it_would_change(tmp_path: Path) -> None:
    ugly = tmp_path / "ugly.py"
    ugly.write_text("x = {  'a':1 }\n")
    done = run("ruff", "format", "--no-cache", "--config", str(CONFIG), "--check", str(ugly))
    assert done.returncode == 1, report(done)
    assert "1 file would be reformatted" in done.stdout, report(done)
    assert ugly.read_text() == "x = {  'a':1 }\n", "--check must not rewrite the file"


def test_mypy_reports_deliberate_errors_with_strict_and_the_pydantic_plugin(tmp_path: Path) -> None:
    lines = [
        "from pydantic_settings import BaseSettings",
        "",
        "",
        "class Settings(BaseSettings):",
        "    token: str",
        "",
        "",
        "def untyped(x):",  # [no-untyped-def]: only under strict
        "    return x",
        "",
        "",
        "count: int = 'three'",  # [assignment]: any mypy
        "settings = Settings()",  # fine with the pydantic plugin (the environment fills it), else [call-arg]
    ]
    bad = tmp_path / "bad_types.py"
    bad.write_text("\n".join(lines) + "\n")
    done = run("mypy", "--config-file", str(CONFIG), "--cache-dir", str(tmp_path / "cache"), str(bad))
    assert done.returncode == 1, report(done)
    found = [(int(e.split(":")[1]), e.rsplit(" ", 1)[-1]) for e in done.stdout.splitlines() if ": error:" in e]
    expected = [
        (lines.index("def untyped(x):") + 1, "[no-untyped-def]"),
        (lines.index("count: int = 'three'") + 1, "[assignment]"),
    ]
    assert found == expected, report(done)
