"""The public surface is what __all__ lists, and importing it stays cheap."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "howhard",
    "howhard.errors",
    "howhard.types",
    "howhard.backends",
    "howhard.evaluation",
    "howhard.ledger",
    "howhard.marginals",
    "howhard.policies",
    "howhard.probes",
    "howhard.scoring",
    "howhard.config",
    "howhard.scheduler",
    "howhard.procedures",
    "howhard.training",
    "howhard.models",
    "howhard.tasks",
    "howhard.serve",
    "howhard.testing",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported), f"{name}.__all__ should be sorted"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r} but it is missing"


def test_import_is_lazy() -> None:
    code = (
        "import sys, howhard, howhard.backends, howhard.policies, howhard.probes, howhard.serve\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'openai') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
