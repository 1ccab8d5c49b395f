"""The built-in backends pass the backend conformance suite (howhard.testing.BackendContract).

vLLM runs it in tests/integration (it needs the real engine).
"""

from pathlib import Path

import pytest

from howhard.backends import Backend, OpenAIBackend, ScriptedBackend
from howhard.testing import BackendContract
from tests.backends.openai_apps import ScriptedOpenAIServer


class TestScriptedBackend(BackendContract):
    encodes = True

    def make_backend(self) -> Backend:
        return ScriptedBackend(
            {"What is 2 + 3? Answer with just the number.": ["The answer is 5.", "5"]}
        )


class TestOpenAIBackend(BackendContract):
    encodes = True

    def make_backend(self) -> Backend:
        httpx2 = pytest.importorskip("httpx2")
        transport = httpx2.ASGITransport(app=ScriptedOpenAIServer().app())
        return OpenAIBackend(
            base_url="http://scripted.test/v1",
            model="scripted",
            http_client=httpx2.AsyncClient(transport=transport),
        )


class TestTransformersBackend(BackendContract):
    encodes = True

    @pytest.fixture(autouse=True)
    def _model(self, tiny_model: Path) -> None:
        self.model = tiny_model

    def make_backend(self) -> Backend:
        from howhard.backends import TransformersBackend

        return TransformersBackend(self.model, dtype="float32")
