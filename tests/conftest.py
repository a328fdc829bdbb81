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


#: The units of work that cost most, in seconds of wall time: ``--durations`` of a whole ``-n 2``
#: run on 2026-12-04 (23:00 UTC, a busy machine: the run took 24 min, not 7; the order matters,
#: not the values; a module of ``WHOLE_MODULES``: the sum of its tests). Wall time, not CPU time,
#: is what a worker waits for: a test whose subprocesses use both cores, or that waits for a
#: child, weighs what it holds its worker. The scheduler hands these out first, most expensive
#: first, and the rest in collection order: the last tests of a run are then short ones, and the
#: two workers finish close together (a 30 s test started last would keep one worker busy while
#: the other idles). A name that is no longer a test only loses its place
#: (tests/test_suite_schedule.py keeps the table true).
EXPENSIVE = {
    "tests/keras/test_keras_on_jax.py::test_jax_backend_api_cases": 224.8,
    "tests/keras/test_distribute.py::test_mirrored_strategy_on_two_devices_equals_one_device": 162.1,
    "tests/test_docs.py::test_python_blocks_run[README.md]": 112.1,
    "tests/test_docs.py::test_python_blocks_run[keras.md]": 107.5,
    "tests/test_dask.py": 89.4,
    "tests/keras/test_distribute.py::test_multi_worker_mirrored_strategy_on_two_processes_equals_one_device": 69.3,
    "tests/test_docs.py::test_python_blocks_run[batch.md]": 59.1,
    "tests/test_batch.py::test_float32_agrees_with_float64": 55.0,
    # the first of the blocks that share `marquardt fit` and `train` (CommandCache): it runs them
    "tests/test_docs.py::test_shell_block_runs[README.md:28]": 53.1,
    "tests/test_docs.py::test_python_blocks_run[distributed.md]": 47.0,
    "tests/test_batch.py::test_equals_one_at_a_time[gauss2d]": 42.5,
    "tests/cli/test_cli.py::test_train_interrupted_keeps_the_best_weights_and_exits_130": 40.4,
    "tests/test_batch.py::test_rounds_with_restarts_equal_one_solve": 39.1,
    "tests/keras/test_trainlm_workflow.py::test_fitnet_has_matlabs_defaults_and_the_saved_model_loads_without_marquardt": 37.1,
    "tests/cli/test_cli.py::test_train_reaches_the_test_mse_bound_and_saves_a_raw_units_model": 35.7,
    "tests/keras/test_cholesky_failures.py::test_tensorflow_imported_first_prints_only_its_own_lines": 34.1,
    "tests/test_quiet_import.py::test_a_fresh_import_of_tensorflow_after_marquardt_prints_nothing": 32.8,
    "tests/keras/test_keras_on_jax.py::test_tensorflow_and_jax_steps_agree_in_float64_and_jax_imports_no_tensorflow": 32.3,
    # the first of the tests that share `marquardt demo` (CommandCache): it runs it
    "tests/test_docs.py::test_shell_block_runs[README.md:12]": 30.6,
    "tests/cli/test_cli.py::test_fit_recovers_known_parameters_and_writes_the_report": 29.0,
    "tests/test_batch.py::test_noise_and_nan_problems_do_not_disturb_others": 28.9,
    "tests/test_docs.py::test_shell_block_runs[keras.md:405]": 27.7,
    "tests/test_batch.py::test_equals_one_at_a_time[double_exp]": 26.9,
    "tests/test_nist.py": 26.6,
    "tests/test_docs.py::test_python_blocks_run[scipy_bridge.md]": 26.1,
    "tests/test_docs.py::test_python_blocks_run[jax.md]": 25.9,
    "tests/keras/test_cholesky_failures.py::test_nothing_on_stderr_when_marquardt_is_imported_first": 24.7,
    "tests/jax/test_imports.py::test_tensorflow_fits_import_no_jax": 24.4,
    "tests/keras/test_keras_on_jax.py::test_tensorflow_and_jax_bayesian_regularisation_agree_in_float64": 23.4,
    "tests/test_scipy_bridge.py::test_import_marquardt_scipy_does_not_import_scipy": 22.2,
    "tests/test_jax_backend.py::test_batch_executor_in_float32_with_float32_tolerances": 20.4,
    "tests/keras/test_contract.py::test_multi_output_metrics_and_losses_are_logged_as_keras_logs_them[dict-dict_outputs]": 18.7,
    "tests/keras/test_contract.py::test_multi_output_metrics_and_losses_are_logged_as_keras_logs_them[none-dict_outputs]": 17.8,
    # its setup builds the module's NIST fixture on JAX
    "tests/test_jax_backend.py::test_nist_certified_digits_on_jax": 17.5,
    "tests/keras/test_contract.py::test_multi_output_metrics_and_losses_are_logged_as_keras_logs_them[dict-list_outputs]": 16.1,
    "tests/test_probe.py::test_front_doors_accept_a_zero_first_derivative": 15.6,
    "tests/keras/test_training.py::test_classification_reaches_adam_accuracy_in_fewer_epochs": 15.6,
    "tests/keras/test_host_lapack.py::test_training_is_the_same_with_host_lapack": 14.6,
    # TensorFlow's warm loops compiled by XLA (3-5 s each)
    "tests/test_least_squares.py::test_one_function_fitted_with_different_parameter_counts": 11.2,
    "tests/test_least_squares.py::test_the_compiled_loop_runs_under_xla_or_as_a_plain_graph_where_xla_cannot": 8.6,
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


@pytest.fixture(autouse=True)
def _batch_kernel_rent_never_due(monkeypatch):
    """A NumPy model's batch moves to its kernel once the host has paid for it: a count of the
    process's history, so that in a test session which tests ran before would decide which
    executor a test gets (they agree to rounding, not bit for bit). Every test therefore runs
    such models on the host unless it asks (``kernel=True``) or sets the thresholds itself
    (tests/test_batch_kernel.py); a TensorFlow model's kernel does not depend on the rent.
    The kernels of earlier tests are forgotten too: a NumPy model finds the kernel of a
    TensorFlow model of the same expression built (``native_kernel`` keeps the built object,
    so a TensorFlow model's next use costs a look-up)."""
    from marquardt import _batch_kernel
    _batch_kernel.reset()
    monkeypatch.setattr(_batch_kernel, "LOAD_POINTS", 1 << 62)
    monkeypatch.setattr(_batch_kernel, "COMPILE_POINTS", 1 << 62)


@pytest.fixture(autouse=True)
def _compiled_curve_rent_never_due(monkeypatch):
    """A ``curve_fit`` model is compiled once its fits have paid for it (``compiled_curve``):
    a count of the process's history, and the compiled residuals agree with the model's to
    rounding, not bit for bit. Every test therefore calls its model unless it sets the
    thresholds itself (tests/test_compiled_curve.py)."""
    from marquardt._backend.numpy import compiled_curve
    compiled_curve.reset()
    for name in ("LOAD_EVALUATIONS", "COMPILE_EVALUATIONS", "EXACT_LOAD_EVALUATIONS",
                 "EXACT_COMPILE_EVALUATIONS"):
        monkeypatch.setattr(compiled_curve, name, 1 << 62)
