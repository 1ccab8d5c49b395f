"""The scheduler examples run as documented."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_custom_policy_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_policy.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    lines = sorted(out.stdout.splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("1 samples -> '4'")  # the short prompt
    assert lines[1].startswith("5 samples -> '5:30pm'")  # the long one, majority answer
    assert out.stderr == ""


def _readme_snippet(heading: str) -> str:
    """Run the first Python block under README's ``heading``; its stdout."""
    section = (ROOT / "README.md").read_text().split(heading, 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    return out.stdout


def test_readme_submit_snippet_runs() -> None:
    assert _readme_snippet("## Submitting requests").startswith("391 4 Usage(")


def test_readme_sequential_snippet_runs() -> None:
    assert _readme_snippet("## Think until settled") == "391 1 passed\n"
