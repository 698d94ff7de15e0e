"""Install every dependency at the lowest version pyproject.toml allows, in a fresh virtual
environment, and run the tests there: a lower bound that is too low shows up as a failure.

    python scripts/check_lower_bounds.py [pytest arguments]    # default: the relay and adapter tests

It needs the package index (pip downloads the old versions), so it is not part of the default
test run; tests/test_lower_bounds.py runs it when LOWER_BOUNDS=1 is set.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ["tests/relay", "tests/adapters", "tests/test_demo.py", "tests/test_setup.py", "-x", "-q"]


def minimum_pins() -> list[str]:
    """`name>=X,<Y` -> `name==X` for every runtime dependency."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for spec in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)", spec)
        if not match:
            raise SystemExit(f"no lower bound in {spec!r}: every dependency needs one")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def main(argv: list[str]) -> int:
    pins = minimum_pins()
    with tempfile.TemporaryDirectory(prefix="lower-bounds-") as tmp:
        venv = Path(tmp) / "venv"
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(pins) + "\n")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        print("installing the minimum versions:", ", ".join(pins), flush=True)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(constraints), ".[test]"],
            check=True,
            cwd=ROOT,
        )
        installed = subprocess.run([python, "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
        wanted = {p.split("==")[0].lower().replace("_", "-") for p in pins}
        for line in installed.splitlines():
            if line.split("==")[0].lower().replace("_", "-") in wanted:
                print("  " + line, flush=True)
        # Run from the repository so its sources win; the dependencies are the venv's.
        done = subprocess.run([python, "-m", "pytest", *(argv or DEFAULT_TESTS)], cwd=ROOT, check=False)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
