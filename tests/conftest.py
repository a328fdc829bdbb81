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


#: The units of work that cost most, in CPU seconds (the test's process and its subprocesses;
#: measured 2026-12-03 with a per-test CPU clock over a whole ``-n 2`` run, on a busy machine: the
#: order matters, not the values; tests changed since were measured again, the NIST and JAX
#: ones by ``--durations`` on 2026-12-04, after ``marquardt._tiering``). The scheduler hands
#: them out first, most expensive first, and the rest in collection order: the last tests of a
#: run are then short ones, and the two workers finish close together (a 70 s test started
#: last would keep one worker busy for a minute while the other idles). A name that is no longer
#: a test only loses its place (tests/test_suite_schedule.py keeps the table true).
EXPENSIVE = {
    "tests/keras/test_keras_on_jax.py::test_jax_backend_api_cases": 112.0,
    "tests/keras/test_distribute.py::test_multi_worker_mirrored_strategy_on_two_processes_equals_one_device": 70.3,
    "tests/test_docs.py::test_python_blocks_run[keras.md]": 64.8,
    "tests/test_dask.py": 64.5,
    "tests/keras/test_distribute.py::test_mirrored_strategy_on_two_devices_equals_one_device": 50.3,
    "tests/test_docs.py::test_python_blocks_run[README.md]": 32.3,
    # the first of the blocks that share `marquardt fit` and `train` (CommandCache): it runs them
    "tests/test_docs.py::test_shell_block_runs[README.md:28]": 29.3,
    "tests/test_docs.py::test_python_blocks_run[distributed.md]": 23.7,
    "tests/test_docs.py::test_python_blocks_run[batch.md]": 23.3,
    "tests/test_nist.py": 22.0,
    "tests/test_docs.py::test_python_blocks_run[jax.md]": 18.1,
    "tests/test_docs.py::test_python_blocks_run[scipy_bridge.md]": 16.8,
    # the first of the tests that share `marquardt demo` (CommandCache): it runs it
    "tests/test_docs.py::test_shell_block_runs[README.md:12]": 14.1,
    "tests/test_batch.py::test_equals_one_at_a_time[gauss2d]": 12.3,
    "tests/keras/test_keras_on_jax.py::test_tensorflow_and_jax_steps_agree_in_float64_and_jax_imports_no_tensorflow": 12.0,
    "tests/cli/test_cli.py::test_train_interrupted_keeps_the_best_weights_and_exits_130": 11.8,
    "tests/test_docs.py::test_shell_block_runs[keras.md:405]": 11.2,
    "tests/cli/test_cli.py::test_train_reaches_the_test_mse_bound_and_saves_a_raw_units_model": 10.9,
    "tests/test_batch.py::test_equals_one_at_a_time[double_exp]": 10.3,
    "tests/jax/test_imports.py::test_every_jax_surface_imports_no_tensorflow": 10.1,
    "tests/keras/test_cholesky_failures.py::test_nothing_on_stderr_when_marquardt_is_imported_first": 10.1,
    "tests/test_jax_backend.py::test_nist_certified_digits_on_jax": 9.8,
    "tests/keras/test_cholesky_failures.py::test_tensorflow_imported_first_prints_only_its_own_lines": 9.8,
    "tests/cli/test_cli.py::test_fit_recovers_known_parameters_and_writes_the_report": 9.1,
    "tests/test_batch.py::test_noise_and_nan_problems_do_not_disturb_others": 9.0,
    "tests/keras/test_trainlm_workflow.py::test_fitnet_has_matlabs_defaults_and_the_saved_model_loads_without_marquardt": 8.4,
    "tests/test_scipy_bridge.py::test_import_marquardt_scipy_does_not_import_scipy": 8.3,
    "tests/test_jax_backend.py::test_batch_executor_in_float32_with_float32_tolerances": 7.8,
    "tests/test_jax_backend.py::test_curve_fit_not_converged_and_nan_policy_with_a_jax_model": 7.1,
    "tests/jax/test_imports.py::test_tensorflow_fits_import_no_jax": 6.9,
    "tests/test_batch.py::test_rounds_with_restarts_equal_one_solve": 6.8,
}


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own, which would pick "load"
def pytest_xdist_make_scheduler(config, log):
    """``load`` scheduling, except that each of ``WHOLE_MODULES`` is one unit of work and the
    ``EXPENSIVE`` units go first, most expensive first."""
    if config.getoption("dist") != "load":
        return None  # another --dist given on the command line wins
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module.endswith(WHOLE_MODULES) else nodeid

        def _assign_work_unit(self, node) -> None:
            if not getattr(self, "_expensive_first", False):  # once, before the first unit goes out
                units = sorted(self.workqueue.items(), key=lambda unit: -EXPENSIVE.get(unit[0], 0.0))
                self.workqueue.clear()
                self.workqueue.update(units)  # sorted() is stable: the rest keep their order
                self._expensive_first = True
            super()._assign_work_unit(node)

    return Scheduling(config, log)


#: Every test id this session collected, before ``-m``/``-k`` deselect some (for
#: tests/test_suite_schedule.py).
COLLECTED = pytest.StashKey[frozenset]()


@pytest.hookimpl(tryfirst=True)  # before pytest's own, which deselects
def pytest_collection_modifyitems(config, items):
    config.stash[COLLECTED] = frozenset(item.nodeid for item in items)


@pytest.fixture(scope="session")
def command_cache(tmp_path_factory):
    """One ``CommandCache`` (tests/command_cache.py) for the session, shared by the xdist workers."""
    from command_cache import CommandCache

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: one per worker
    return CommandCache(shared / "docs-shell-commands")
