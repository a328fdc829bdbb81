import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Modules whose tests share one expensive module-scoped fixture (a whole NIST run, a Dask
#: cluster): under pytest-xdist each of them runs whole on one worker, so the fixture is built
#: once. xdist's default ``load`` scheduling spreads a module's tests over the workers, and each
#: worker builds the fixture again. (``--dist loadgroup`` would say this with marks, but it does
#: not group under pytest 9: xdist 3.8 renames test ids through an attribute pytest 9 no longer
#: reads.)
WHOLE_MODULES = ("tests/test_nist.py", "tests/test_dask.py")


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own, which would pick "load"
def pytest_xdist_make_scheduler(config, log):
    """``load`` scheduling, except that each of ``WHOLE_MODULES`` is one unit of work."""
    if config.getoption("dist") != "load":
        return None  # another --dist given on the command line wins
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module.endswith(WHOLE_MODULES) else nodeid

    return Scheduling(config, log)


@pytest.fixture(scope="session")
def command_cache(tmp_path_factory):
    """One ``CommandCache`` (tests/command_cache.py) for the session, shared by the xdist workers."""
    from command_cache import CommandCache

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: one per worker
    return CommandCache(shared / "docs-shell-commands")
