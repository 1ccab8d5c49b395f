"""The backend registry: one name → class table, used by the CLI, features and probe loading."""

import subprocess
import sys

import pytest

import howhard.backends
from howhard.backends import LayerEncoder, ScriptedBackend, create, kinds, make_encoder
from howhard.backends.registry import backend_class
from howhard.errors import ConfigError

pytestmark = pytest.mark.anyio


def test_every_kind_resolves_to_the_class_howhard_backends_exports() -> None:
    assert kinds() == ("openai", "scripted", "transformers", "vllm")
    for kind in kinds():
        cls = backend_class(kind)
        assert getattr(howhard.backends, cls.__name__) is cls


def test_create_builds_a_backend_and_names_the_class_on_a_bad_option() -> None:
    backend = create("scripted", model="m", hidden_size=3)
    assert isinstance(backend, ScriptedBackend) and backend.model == "m"
    with pytest.raises(ConfigError, match=r"ScriptedBackend rejected options \{'nope': 1\}"):
        create("scripted", nope=1)
    with pytest.raises(ConfigError, match=r"kind 'tgi' is not one of \['openai', 'scripted'"):
        create("tgi")


def test_naming_a_kind_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from howhard.backends import registry\n"
        "registry.backend_class('vllm'), registry.backend_class('openai')\n"
        "registry.backend_class('transformers')\n"
        "print(','.join(m for m in ('torch', 'vllm', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_encoders_other_than_transformers_read_only_the_last_layer() -> None:
    with pytest.raises(ConfigError, match="returns the last layer only"):
        make_encoder({"encoder": "vllm", "model": "m", "layer": 3})
    encoder = make_encoder({"encoder": "scripted", "options": {"hidden_size": 6}})
    assert isinstance(encoder, LayerEncoder)
    assert (await encoder.encode(["a", "b"])).shape == (2, 6)


def test_an_encoder_record_with_a_bad_option_names_the_encoder() -> None:
    with pytest.raises(ConfigError, match=r"encoder='scripted' rejected options=\{'foo': 1\}"):
        make_encoder({"encoder": "scripted", "options": {"foo": 1}})
    with pytest.raises(ConfigError, match="needs base_url and model"):
        make_encoder({"encoder": "openai", "model": "m"})
    with pytest.raises(ConfigError, match="encoder must be one of"):
        make_encoder({"encoder": "tgi"})
