"""Marks the deliberate differences of each SciPy-suite module as strict xfails.

A module lists them in ``DIFFERENCES``: ``{"Class::test_name[param]": reason}`` (the part of
the test id after the file name). Strict: a difference that goes away fails the run, so the
list stays true.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        differences = getattr(item.module, "DIFFERENCES", None)
        if not differences:
            continue
        key = item.nodeid.split("::", 1)[1]
        reason = differences.get(key)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
