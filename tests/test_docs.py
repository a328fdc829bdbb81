"""Every Python and shell block of README.md and docs/*.md runs, as a new user would run it.

The fenced blocks are read from the Markdown files: ```python blocks of one file run in order in one
fresh interpreter (a later block may use the names of an earlier one, as a reader does), each shell
block (```bash, ```shell, ```console) in a fresh bash. Both run in a temporary directory that has
the clone's ``examples``, ``tests`` and ``benchmarks`` folders, with ``marquardt`` and ``python`` on
the PATH meaning this checkout's package and this interpreter. Blocks that are not meant to run
(output listings, usage synopses, JSON) carry another language (```text, ```json); a block without
a language fails ``test_every_block_names_its_language``. A `marquardt demo`, `fit` or `train`
command that appears in more than one block (the README repeats docs/cli.md's) runs once per test
session; every block that shows it gets its output and the files it wrote (``CommandCache``).

Three kinds of shell command are not run as written, each said here, none silently:

* setting up the environment (``python3 -m venv``, ``. .venv/bin/activate``, ``pip install``):
  the environment is the one these tests run in; ``test_install_commands_name_real_extras``
  checks that every extra they name exists in pyproject.toml;
* ``python -m pytest ...`` (the suite itself) runs with ``-n 0 --collect-only tests/test_docs.py``:
  its options are parsed and this module collected. The suite runs in CI anyway (by that very
  command, so a module that fails to collect fails the run), and running it inside one of its
  tests would recurse; collecting the whole suite would import TensorFlow, JAX and Keras again,
  16 CPU-s per command.

Blocks that take more than a few seconds (training, the demo) are marked slow. Every run also checks
stderr: no TensorFlow, absl or XLA start-up banner and no line printed more than once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from command_cache import CommandCache, Outcome, prepare

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "bash", "shell", "console"}
NOT_RUN = {"text", "json", "toml"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")

#: Shell blocks that fit, train, run the demo or collect the suite take 10-80 s: marked slow.
SLOW_COMMANDS = re.compile(r"marquardt (demo|train|fit)\b|pytest")
#: Python blocks of these documents train networks (README: 300 LM epochs): marked slow.
SLOW_PYTHON = {"README.md", "keras.md", "distributed.md"}
#: Lines that TensorFlow, absl or XLA print at start-up or per op, which must not reach the user.
BANNERS = re.compile(r"absl::InitializeLog|^[IWE]\d{4} |cpu_feature_guard|oneDNN|XLA service|"
                     r"StreamExecutor|Cholesky decomposition was not successful|This TensorFlow binary")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, indented ones (in lists) included, dedented."""
    found, lines, i = [], path.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening:
            indent, language, start, body = len(opening.group(1)), opening.group(2), i, []
            i += 1
            while not FENCE.match(lines[i]):
                body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
                i += 1
            found.append(Block(path, start + 1, language, "\n".join(body) + "\n"))
        i += 1
    return found


ALL = [block for path in DOCUMENTS for block in blocks(path)]
SHELL = [block for block in ALL if block.language in RUN - {"python"}]
PYTHON_DOCUMENTS = sorted({block.path for block in ALL if block.language == "python"})


def test_every_block_names_its_language():
    unnamed = [block.name for block in ALL if block.language not in RUN | NOT_RUN]
    assert not unnamed, f"blocks with no language or an unknown one (use ```text for output): {unnamed}"


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, dict]:
    """A directory prepared as a clone's (see ``prepare``), and its environment."""
    return tmp_path, prepare(tmp_path)


def check_stderr(stderr: str, name: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    banners = [line for line in lines if BANNERS.search(line)]
    assert not banners, f"{name} printed TensorFlow/absl/XLA lines on stderr:\n" + "\n".join(banners[:10])
    repeated = sorted({line for line in lines if lines.count(line) > 1})
    assert not repeated, f"{name} printed these lines more than once on stderr:\n" + "\n".join(repeated[:10])


# ---- shell blocks ----------------------------------------------------------------------------------------

SETUP = re.compile(r"^(python3? -m venv \S+|\. \S+/bin/activate|pip install .*)$")


#: What ``python -m pytest ...`` gets: the options are parsed and this module collected, in one
#: process (``-n 0`` after ``-n 2`` overrides it, so xdist is still required; ``-m "not slow"``
#: leaves some of this module's tests, so the exit status is 0, not 5 for "nothing collected").
COLLECT_ONLY = " -n 0 --collect-only tests/test_docs.py"


def commands(block: Block) -> list[str]:
    """The block's commands, one per line or ``&&`` part: continued lines joined, comments
    dropped, setup commands replaced by ``true`` and ``python -m pytest`` by its
    ``COLLECT_ONLY`` form."""
    text = re.sub(r"\\\n\s*", " ", block.text)
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        for part in (part.strip() for part in line.split("&&")):
            part = "true" if SETUP.match(part) else part
            out.append(part + COLLECT_ONLY if part.startswith("python -m pytest") else part)
    return out


def shell_script(block: Block) -> str:
    """The block as one bash script (``set -e``) of its ``commands``."""
    return "set -e\n" + "\n".join(commands(block)) + "\n"


#: Commands that run the same way wherever they appear (they read the clone's example files
#: and write only below the working directory): an identical one in another block (the README
#: and docs/cli.md show the same `marquardt demo`, `fit` and `train`; tests/cli/test_cli.py checks
#: the demo's output) runs once per test session, and each block gets its output and the files it
#: wrote (``CommandCache``, tests/command_cache.py).
SHARED_COMMAND = re.compile(r"^marquardt (demo|fit|train)\b[^;|&<>$`]*$")
#: A block of such lines (and ``true``) runs command by command; any other block runs as one
#: bash script, since its lines may depend on each other (``cd``, variables).
PLAIN_COMMAND = re.compile(r"^(true|[\w./-]+( [^;|&<>$`]*)?)$")


def run_block(block: Block, cwd: Path, env: dict, cache: CommandCache) -> Outcome:
    """The block's commands as ``bash -e`` would run them, each shared command once per session."""
    parts = commands(block)
    if not all(PLAIN_COMMAND.match(part) for part in parts):
        proc = subprocess.run(["bash", "-c", shell_script(block)], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        return Outcome(proc.returncode, proc.stdout, proc.stderr)
    stdout, stderr = "", ""
    for part in parts:
        if SHARED_COMMAND.match(part):
            done = cache.run(part, cwd, env)
        else:
            proc = subprocess.run(["bash", "-c", part], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=600)
            done = Outcome(proc.returncode, proc.stdout, proc.stderr)
        stdout, stderr = stdout + done.stdout, stderr + done.stderr
        if done.returncode:
            return Outcome(done.returncode, stdout, stderr)
    return Outcome(0, stdout, stderr)


def marks(block: Block):
    return [pytest.mark.slow] if SLOW_COMMANDS.search(block.text) else []


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name, marks=marks(b)) for b in SHELL])
def test_shell_block_runs(block: Block, workdir, command_cache):
    cwd, env = workdir
    proc = run_block(block, cwd, env, command_cache)
    assert proc.returncode == 0, f"{block.name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    check_stderr(proc.stderr, block.name)


def test_install_commands_name_real_extras():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set()
    for block in SHELL:
        for match in re.finditer(r"pip install (?:-e )?[\"']?(?:\.|marquardt)\[([\w,]+)\]", block.text):
            named.update(match.group(1).split(","))
    assert named and named <= extras, f"unknown extras {sorted(named - extras)}"


# ---- python blocks ---------------------------------------------------------------------------------------

RUNNER = """\
import sys
namespace = {"__name__": "__main__"}
for name, source in BLOCKS:
    print(f"--- {name}", flush=True)
    exec(compile(source, name, "exec"), namespace)
"""


@pytest.mark.parametrize("path", [
    pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW_PYTHON else [])
    for p in PYTHON_DOCUMENTS])
def test_python_blocks_run(path: Path, workdir):
    cwd, env = workdir
    source = [(block.name, block.text) for block in blocks(path) if block.language == "python"]
    script = f"BLOCKS = {source!r}\n" + RUNNER
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    check_stderr(proc.stderr, path.name)


# ---- listings shown beside the commands ------------------------------------------------------------------


@pytest.mark.slow
def test_the_fit_listing_of_docs_cli_is_what_the_command_prints(workdir, command_cache):
    """docs/cli.md shows `marquardt fit examples/cli/decay.csv ...`'s report: it must be the report
    the command prints today (the fit is deterministic; only the measured cost reduction of the
    status line may differ in its last digits, and with them its sign and the rounding note)."""
    cwd, env = workdir
    listing = next(b.text for b in blocks(ROOT / "docs" / "cli.md")
                   if b.language == "text" and b.text.startswith("[[Model]]"))
    command = next(b for b in SHELL if b.path.name == "cli.md" and "marquardt fit" in b.text)
    proc = run_block(command, cwd, env, command_cache)  # the report goes to files and stderr only
    assert proc.returncode == 0, proc.stderr

    def comparable(text: str) -> list[str]:
        # the measured reduction's last digits, and so its sign at rounding level, vary by CPU
        return [re.sub(r"\((relative cost reduction \S+ < ftol|the last step's cost change "
                       r"\(\S+ relative\) is at rounding level, below ftol) (\S+?)\)",
                       r"(ftol \2 ...)", line)
                for line in text.strip().splitlines()]

    assert comparable(proc.stdout) == comparable(listing)
