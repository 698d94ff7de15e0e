"""The lowest version of every dependency that pyproject.toml allows, installed in a fresh virtual
environment, passes the relay and adapter tests (scripts/check_lower_bounds.py).

It downloads old versions from the package index and takes several minutes, so it runs only
when asked: LOWER_BOUNDS=1 python -m pytest tests/test_lower_bounds.py
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.environ.get("LOWER_BOUNDS") != "1", reason="needs the package index; set LOWER_BOUNDS=1")
@pytest.mark.timeout(3600)
def test_minimum_versions_pass_the_tests() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_lower_bounds.py")], cwd=ROOT, check=False)
    assert done.returncode == 0


def test_every_runtime_dependency_has_a_lower_bound_the_script_can_pin() -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "check_lower_bounds.py"))  # its main() runs only as a script
    pins: list[str] = script["minimum_pins"]()
    assert all("==" in p for p in pins) and len(pins) >= 10
    # discord.ui.Label (the /link form) arrived in 2.6; a Select in a modal says `required` from 2.6.3.
    assert "discord.py==2.6.3" in pins
