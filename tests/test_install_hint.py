"""Install hints say what works from where the user stands (issue #15)."""

from pathlib import Path

import marquardt
from marquardt import _install

ROOT = Path(marquardt.__file__).resolve().parents[2]


def test_from_a_clone_the_hint_installs_the_clone(monkeypatch, tmp_path):
    assert _install.clone_root() == ROOT  # these tests import the package from a clone
    monkeypatch.chdir(ROOT)
    assert _install.install_command("cpu") == "pip install -e '.[cpu]'"
    monkeypatch.chdir(tmp_path)
    assert _install.install_command("cpu") == f"pip install -e '{ROOT}[cpu]'"


def test_from_an_installed_package_the_hint_names_the_package(monkeypatch):
    monkeypatch.setattr(_install, "clone_root", lambda: None)
    assert _install.install_command("cli") == "pip install 'marquardt[cli]'"


def test_marquardt_keras_without_its_backend_says_how_to_install_it():
    """Keras 3 is installed with marquardt but cannot start without TensorFlow or JAX: the
    import names what is missing and the extras that provide it (here TensorFlow is hidden
    from a fresh interpreter by a finder that refuses it)."""
    import subprocess
    import sys

    code = ("import sys, importlib.abc\n"
            "class Refuse(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'tensorflow':\n"
            "            raise ModuleNotFoundError(\"No module named 'tensorflow'\", name='tensorflow')\n"
            "sys.meta_path.insert(0, Refuse())\n"
            "try:\n"
            "    import marquardt.keras\n"
            "except ImportError as e:\n"
            "    print(type(e).__name__, e)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True, env=env, cwd=ROOT).stdout
    assert out.startswith("ImportError marquardt.keras needs Keras 3 and a Keras backend, and "
                          "'tensorflow' is not installed."), out
    assert "pip install -e '.[cpu]'" in out and "pip install -e '.[jax]'" in out


_REFUSE_TENSORFLOW = (
    "import sys, importlib.abc\n"
    "class Refuse(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name.split('.')[0] in ('tensorflow', 'jax'):\n"
    "            raise ModuleNotFoundError(f\"No module named {name!r}\", name=name)\n"
    "sys.meta_path.insert(0, Refuse())\n"
    "from marquardt.cli import main\n")


def _cli_without_tensorflow(*argv: str):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "KERAS_BACKEND"}
    code = _REFUSE_TENSORFLOW + f"sys.exit(main({list(argv)!r}))\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def test_commands_without_tensorflow():
    """``marquardt demo`` (the Keras trainer) without TensorFlow: exit 1, nothing on stdout, the
    hint's pip commands each on its own line. ``marquardt nist`` needs no TensorFlow (NumPy
    models with symbolic Jacobians): one NIST file scored, exit 0."""
    proc = _cli_without_tensorflow("demo", "--no-plot")
    assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("marquardt: error: this command needs marquardt.keras, the Keras "
                               "trainer, which cannot be imported: "), lines
    assert any(line.strip().startswith("pip install -e '.[cpu]'") for line in lines[1:]), lines
    proc = _cli_without_tensorflow("nist", str(ROOT / "tests" / "data" / "nist" / "Misra1a.dat"),
                                   "--min-lre", "6")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines()[2].startswith("Misra1a"), proc.stdout
