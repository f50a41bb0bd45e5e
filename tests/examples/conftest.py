"""The examples run against the in-process order path (tests/pipeline) and, for HTTP, the gateway in front of it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.dashboard.conftest import PASSWORD, Served, served  # noqa: F401 - the fixture, reused
from tests.pipeline.conftest import Stack, stack  # noqa: F401 - the fixture, reused

EXAMPLES = REPO_ROOT / "examples"


def example_env() -> dict[str, str]:
    """The environment an example runs in: this venv's `python` and `sq` first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def nats_url(running: Stack) -> str:
    """The URL of the stack's broker, for a process of its own to connect to."""
    url = running.bus.nc.connected_url
    assert url is not None
    return url.geturl()


async def run(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 30) -> str:
    """Run a command to completion; fail with its output if it exits non-zero; return its stdout."""
    process = await asyncio.create_subprocess_exec(*map(str, argv), cwd=REPO_ROOT, env=env or example_env(),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, f"{argv} exited {process.returncode}:\n{out.decode()}\n{err.decode()}"
    return out.decode()


__all__ = ["EXAMPLES", "PASSWORD", "Served", "Stack", "example_env", "nats_url", "run"]
