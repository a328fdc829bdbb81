import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (``-n 2``), tests marked ``xdist_group`` run on one worker per group.

    Several modules build one expensive module-scoped fixture (a whole NIST run, a Dask cluster)
    shared by many tests. xdist's default ``load`` scheduling spreads a module's tests over the
    workers, and each worker then builds the fixture again. ``loadgroup`` keeps every group on
    one worker and spreads the rest as ``load`` does; ``--dist`` given on the command line wins.
    """
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadGroupScheduling

    return LoadGroupScheduling(config, log)
