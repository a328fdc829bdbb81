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
