"""The command line exits cleanly: SIGTERM runs cleanup, bad input gets one line and a code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from howhard.cli import main

ROOT = Path(__file__).resolve().parent.parent

# A collect run whose backend blocks in generate() until cancelled and records its own cleanup,
# standing in for a vLLM engine whose processes must be shut down by aclose().
LAUNCHER = """
import signal
import sys
from pathlib import Path

import anyio

import howhard.backends.scripted
from howhard.backends.scripted import ScriptedBackend
from howhard.cli import main

marks = Path(sys.argv[1])


class BlockingBackend(ScriptedBackend):
    async def generate(self, prompt, *, n, params):
        (marks / "started").touch()
        await anyio.sleep_forever()

    async def aclose(self):
        await super().aclose()
        (marks / "closed").touch()


howhard.backends.scripted.ScriptedBackend = BlockingBackend  # what the registry builds
if sys.argv[2] == "ignore-sigint":  # as shells start background jobs
    signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(main(sys.argv[3:]))
"""


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the CLI exited early:\n{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.05)


@pytest.mark.parametrize(
    "sigint_ignored",
    [False, True],
    ids=["foreground", "background-job-with-SIGINT-ignored"],
)
def test_sigterm_during_collect_closes_the_backend_and_exits_143(
    tmp_path: Path, sigint_ignored: bool
) -> None:
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    requests = tmp_path / "q.jsonl"
    requests.write_text(json.dumps({"id": "a", "prompt": "2+3?", "reference": "5"}) + "\n")
    args = ["collect", "--input", str(requests), "--out", str(tmp_path / "out")]
    args += ["--backend", "scripted", "--scorer", "exact", "--samples", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mode = "ignore-sigint" if sigint_ignored else "default"
    proc = subprocess.Popen(
        [sys.executable, str(launcher), str(tmp_path), mode, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Shells start background jobs with SIGINT ignored; SIGTERM must still clean up.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )
    _wait_for(tmp_path / "started", proc)

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signal.SIGTERM
    assert (tmp_path / "closed").exists(), "the backend's aclose() did not run"
    assert "Traceback" not in stderr
    assert "howhard collect: terminated (SIGTERM)" in stderr


COLLECT = ["--input", "{q}", "--out", "{tmp}/out", "--backend", "scripted", "--scorer", "exact"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collect", "--input", "{missing}", "--out", "{tmp}/o", "--scorer", "exact"], "input="),
        (["features", "--dataset", "{missing}"], "dataset="),
        (["train", "--dataset", "{missing}", "--out", "{tmp}/ck"], "dataset="),
        (["evaluate", "--data", "{missing}"], "does not exist"),
        (["demo", "--probe", "{missing}", "--backend", "scripted"], "probe="),
        (["demo", "--questions", "0", "--backend", "scripted"], "questions must be"),
        (["serve", "--config", "{missing}"], "config="),
        (["serve", "--config", "{q}"], "not valid TOML"),
        (["keys", "add", "--config", "{missing}", "--tenant", "t"], "does not exist"),
        (["collect", *COLLECT, "--backend-option", "foo=1"], "--backend-option: ScriptedBackend"),
        (["collect", *COLLECT, "--backend-option", "hidden_size=x"], "--backend-option"),
        (["collect", *COLLECT, "--limit", "-1"], "--limit must be >= 0, got -1"),
        (
            [
                "features",
                "--dataset",
                "{dataset}",
                "--encoder",
                "scripted",
                "--encoder-option",
                "foo=1",
            ],
            "encoder='scripted' rejected options",
        ),
        (
            ["train", "--dataset", "{dataset}", "--out", "{tmp}/ck", "--epochs", "0"],
            "TrainConfig.max_epochs",
        ),
    ],
)
def test_bad_input_gets_one_line_on_stderr_and_exit_code_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = tmp_path / "q.jsonl"
    requests.write_text(json.dumps({"id": "a", "prompt": "2+3?", "reference": "5"}) + "\n")
    dataset = tmp_path / "dataset"
    collected = ["collect", "--input", str(requests), "--out", str(dataset), "--no-progress"]
    assert main([*collected, "--backend", "scripted", "--scorer", "exact", "--samples", "2"]) == 0
    capsys.readouterr()
    names = {"missing": tmp_path / "missing", "tmp": tmp_path, "dataset": dataset, "q": requests}
    code = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"howhard {argv[0]}: error: ")
    assert message in err
    assert err.count("\n") == 1
