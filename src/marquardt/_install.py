"""Install hints that work from where the user stands: a clone of marquardt, or an installed package.

marquardt is not published on PyPI yet, so ``pip install 'marquardt[cpu]'`` works only once it is;
from a clone (``src/marquardt`` beside a ``pyproject.toml`` that names the project) the command
that works is ``pip install -e '<clone>[cpu]'``. The package's own location tells which.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["clone_root", "install_command"]


def clone_root() -> Path | None:
    """The root of the clone this package is imported from (editable install or PYTHONPATH), or None."""
    root = Path(__file__).resolve().parents[2]  # <root>/src/marquardt/_install.py
    pyproject = root / "pyproject.toml"
    try:
        if pyproject.is_file() and 'name = "marquardt"' in pyproject.read_text(encoding="utf-8"):
            return root
    except OSError:
        pass
    return None


def install_command(extra: str) -> str:
    """``pip install`` of the extra ``extra`` (``"cpu"``, ``"cli"``): from the clone when there is one."""
    root = clone_root()
    if root is None:
        return f"pip install 'marquardt[{extra}]'"
    here = Path.cwd().resolve()
    target = "." if here == root else str(root)
    return f"pip install -e '{target}[{extra}]'"
