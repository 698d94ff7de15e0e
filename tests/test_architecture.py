"""The import contracts in pyproject.toml hold, and the checker really looks at imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lint_imports() -> str:
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "import-linter is not installed (pip install -e '.[test]')"
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lint_imports(), "--no-cache", "--no-logo", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_are_kept() -> None:
    done = run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The core never imports an adapter or a chat library KEPT" in done.stdout
    assert "The simulator stands alone KEPT" in done.stdout
    assert "Adapters reach Redis only through AdapterServices KEPT" in done.stdout
    assert "0 broken" in done.stdout


def test_a_contract_that_the_code_breaks_is_reported(tmp_path: Path) -> None:
    # adapters.main imports relay.app: forbidding that must fail, or the checker checks nothing.
    config = tmp_path / "broken.ini"
    config.write_text(
        "[importlinter]\n"
        "root_packages =\n    relay\n    adapters\n    aitrader_sim\n"
        "include_external_packages = True\n\n"
        "[importlinter:contract:broken]\n"
        "name = adapters never import the core (deliberately false)\n"
        "type = forbidden\n"
        "source_modules =\n    adapters\n"
        "forbidden_modules =\n    relay\n\n"
        "[importlinter:contract:kept]\n"
        "name = the core never imports the simulator\n"
        "type = forbidden\n"
        "source_modules =\n    relay\n"
        "forbidden_modules =\n    aitrader_sim\n"
    )
    done = run(str(config))
    assert done.returncode != 0, done.stdout
    assert "adapters never import the core (deliberately false) BROKEN" in done.stdout
    assert "the core never imports the simulator KEPT" in done.stdout
    assert "adapters.main -> relay" in done.stdout
