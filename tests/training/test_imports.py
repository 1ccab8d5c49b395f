"""The training package and its CLI commands import without torch until a probe is used."""

import subprocess
import sys


def test_training_and_its_commands_import_without_heavy_dependencies() -> None:
    code = (
        "import sys, howhard.training, howhard.policies\n"
        "import howhard.commands.collect, howhard.commands.features, howhard.commands.train\n"
        "import howhard.cli\n"
        "howhard.cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'openai') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
