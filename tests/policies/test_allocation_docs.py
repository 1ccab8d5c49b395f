"""The allocation example and the README's allocation snippet run and say what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_allocate_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "allocate.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    ).stdout
    assert "allocate_success_prob gives the same budgets: True" in out
    uniform, adaptive = map(float, re.findall(r"uniform ([0-9.]+), adaptive ([0-9.]+)", out)[0])
    assert adaptive > uniform


def test_readme_allocation_snippet_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Allocation API", 1)[1]
    snippet = section.split("```python", 1)[1].split("```", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    ).stdout
    assert out.split() == ["[1", "2", "4", "3", "0]", "[1", "2", "4", "3", "0]"]
