"""The suite's scheduling table (``EXPENSIVE`` in tests/conftest.py) names real units of work."""

from pathlib import Path

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def test_expensive_units_are_tests_or_whole_modules(request):
    """Every ``EXPENSIVE`` entry is a collected test id, or a module of ``WHOLE_MODULES``
    (one unit of work), listed most expensive first: a renamed test would silently lose its
    place at the head of the queue. Test ids are checked for the modules this session
    collected (all of them in a whole-suite run; ``-m``/``-k`` deselection does not matter)."""
    conftest = next(p for p in request.config.pluginmanager.get_plugins()
                    if getattr(p, "__file__", None) == str(CONFTEST))
    collected = request.config.stash[conftest.COLLECTED]
    modules = {nodeid.split("::", 1)[0] for nodeid in collected}
    root = CONFTEST.parents[1]
    assert conftest.EXPENSIVE
    for unit, seconds in conftest.EXPENSIVE.items():
        module = unit.split("::", 1)[0]
        assert (root / module).is_file(), unit
        if "::" not in unit:
            assert unit.endswith(conftest.WHOLE_MODULES), f"{unit!r} is not one unit of work"
        elif module in modules:
            assert unit in collected, f"EXPENSIVE names {unit!r}, which is not a test"
        assert seconds > 0
    costs = list(conftest.EXPENSIVE.values())
    assert costs == sorted(costs, reverse=True)
