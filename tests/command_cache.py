"""Commands run once per test session and shared by the tests that show them.

A ``marquardt demo`` (or ``fit``, ``train``) that several tests run the same way (the README and
docs/cli.md show one, ``tests/cli/test_cli.py`` checks the demo's output) costs seconds of
TensorFlow start-up and training each time. ``CommandCache`` runs such a command once per test
session, for every xdist worker, in a directory prepared as a clone's (``prepare``), and gives
each caller its output and a copy of the files it wrote. The ``command_cache`` fixture is in
tests/conftest.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import marquardt

ROOT = Path(__file__).resolve().parents[1]
SRC = str(Path(marquardt.__file__).resolve().parents[1])


def prepare(directory: Path) -> dict:
    """Give ``directory`` the clone's example folders; return an environment whose ``marquardt``
    and ``python`` are this checkout's package and this interpreter."""
    for name in ("examples", "tests", "benchmarks"):
        (directory / name).symlink_to(ROOT / name)
    bin_dir = directory / ".bin"
    bin_dir.mkdir()
    for name, command in (("marquardt", f"{shlex.quote(sys.executable)} -m marquardt"),
                          ("python", shlex.quote(sys.executable)), ("python3", shlex.quote(sys.executable))):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "Agg"
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user has: marquardt must keep stderr quiet itself
    return env


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


class CommandCache:
    """Runs a command once per session, for every xdist worker: the first caller runs it in a
    directory of its own, under a file lock; later callers wait for it and reuse it. Only for
    commands that run the same way wherever they are called (they read the clone's example
    files and write only below the working directory)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def run(self, command: str, cwd: Path, env: dict) -> Outcome:
        key = hashlib.sha256(command.encode()).hexdigest()[:20]
        entry = self.root / key
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (entry / "outcome.json").exists():
                work = entry / "work"
                shutil.rmtree(work, ignore_errors=True)  # left by a run that timed out
                work.mkdir(parents=True)
                proc = subprocess.run(["bash", "-c", command], cwd=work, env=prepare(work),
                                      capture_output=True, text=True, timeout=600)
                (entry / "outcome.json").write_text(json.dumps([proc.returncode, proc.stdout, proc.stderr]))
        work = entry / "work"
        for item in work.iterdir():  # what the command wrote, into the caller's directory
            if item.name not in ("examples", "tests", "benchmarks", ".bin"):
                if item.is_dir():
                    shutil.copytree(item, cwd / item.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(item, cwd / item.name)
        return Outcome(*json.loads((entry / "outcome.json").read_text()))
