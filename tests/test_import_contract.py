"""The import contract in pyproject.toml holds, and would catch a forbidden import.

Runs import-linter (the dev extra) so that the README's test command, and CI with it, enforce
the layering described in docs/architecture.md.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="install the dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parent.parent

LINT = (
    "import sys\n"
    "from importlinter.cli import lint_imports\n"
    "sys.exit(lint_imports(no_cache=True, no_logo=True))\n"
)


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    # From `root` (lint_imports puts the working directory first on sys.path), so the tree
    # under test is the one analysed, not an installed copy.
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True, timeout=300
    )


def test_the_import_contract_holds() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_policy_importing_the_scheduler_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "howhard", tmp_path / "howhard", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "howhard" / "policies" / "base.py"
    base.write_text(base.read_text() + "\nimport howhard.scheduler.batcher\n")
    result = lint(tmp_path)
    assert result.returncode == 1
    assert "policies never import the scheduler, backends or training BROKEN" in result.stdout
    assert "howhard.policies.base -> howhard.scheduler.batcher" in result.stdout
