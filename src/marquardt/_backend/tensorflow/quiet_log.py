"""TensorFlow's log lines about marquardt's own compiled functions, kept off the user's stderr.

Three kinds, each dropped only where marquardt's own machinery causes it, so that the user's
warnings and errors (and TensorFlow's about the user's own code) still reach them:

* Python's ``tensorflow`` logger, "triggered tf.function retracing": each problem kind gets its
  own compiled solver and residual functions by design (the executors' caches,
  ``marquardt._cache``), and the SciPy bridge traces its ``tf.vectorized_map`` (TensorFlow's
  ``pfor``) once per model; TensorFlow counts those as retracings of one Python function. A
  user's function compiled anew at every fit is warned about by marquardt itself
  (``marquardt._recompile``). Dropped for the functions named in ``OURS``.
* the same warning about Keras' own compiled steps (``TensorFlowTrainer._make_function``'s
  functions), which Keras traces once per model: a script that trains several networks with
  ``marquardt.keras`` (``fitnet`` after ``fit``, say) reaches TensorFlow's count of five.
  Dropped only while one of marquardt's Keras fits runs, in its thread (``keras_fitting``): a
  user's own ``model.fit`` loop keeps its warning.
* Python's ``tensorflow`` logger, "Using a while_loop for converting PyFunc cause there is no
  registered converter for this op" (and for any other op ``pfor`` cannot vectorise): once per
  trace of our ``tf.vectorized_map`` over a model with ``tf.numpy_function``, five times for one
  ``curve_fit_batch``. The model then runs per problem in a loop (docs/batch.md says so).
  Dropped only while ``vectorized_map`` below runs, in its thread: a user's own
  ``tf.vectorized_map`` keeps its warning.
* TensorFlow's C++ log on file descriptor 2, at the first run of a compiled function
  (``first_run``): XLA's start-up INFO lines ("XLA service ... initialized", "StreamExecutor
  [0]: Host", "disabling MLIR crash reproducer", "Compiled cluster using XLA!"), which TensorFlow
  prints when it was imported before marquardt (its C++ log level is read at its import, so
  marquardt's ``TF_CPP_MIN_LOG_LEVEL=2`` came too late), and oneDNN's "oneDNN supports DT_BOOL
  only on platforms with AVX-512. Falling back to the default Eigen-based implementation",
  logged at ERROR level whichever was imported first (a while loop of ``pfor``'s over a
  ``tf.numpy_function`` model, on an AVX-512 machine). Every other line, warnings and errors
  included, is written back in order after the run (``_quiet_import.without_notices``).
  ``TF_CPP_MIN_LOG_LEVEL=0`` (the whole log asked for) drops nothing. (The variable says
  nothing reliable otherwise: JAX's import, which TensorFlow's causes where Keras 3 and JAX
  are installed, sets it to 1 after TensorFlow's C++ log has read it.)

Installed on import, once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import weakref
from typing import Any, Callable, TypeVar

import tensorflow as tf

from marquardt import _quiet_import

__all__ = ["KERAS_STEPS", "OURS", "RUN_NOTICES", "keras_fitting", "vectorized_map",
           "first_run"]

_T = TypeVar("_T")

#: The qualified names of our functions whose retracing is by design.
OURS = ("warm_solver.<locals>", "build_stepper.<locals>", "compiled_evaluator.<locals>",
        "pfor.<locals>")

#: Keras' compiled steps, traced once per model (``keras_fitting``).
KERAS_STEPS = "TensorFlowTrainer._make_function.<locals>"

#: ``pfor``'s notice that an op is run in a loop, not vectorised.
_PFOR_FALLBACK = "Using a while_loop for converting"

#: The C++ lines ``first_run`` drops: INFO lines (glog's ``I`` prefix: nothing a user asked
#: for, when the log level is not theirs), and oneDNN's DT_BOOL notice (logged as an ERROR).
RUN_NOTICES = re.compile(r"^I\d{4} [\d:. ]+\d+ [\w.]+:\d+\] "
                         r"|^E\d{4} [\d:. ]+\d+ util\.cc:\d+\] oneDNN supports DT_BOOL only")

_local = threading.local()


class _OurLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "retracing" in message and (any(name in message for name in OURS) or (
                getattr(_local, "fitting", 0) and KERAS_STEPS in message)):
            return False
        return not (getattr(_local, "vectorizing", 0) and message.startswith(_PFOR_FALLBACK))


@contextlib.contextmanager
def keras_fitting():
    """Inside: a marquardt Keras fit runs in this thread, and TensorFlow's retracing warning
    about Keras' own steps (``KERAS_STEPS``) is dropped (see the module doc)."""
    _local.fitting = getattr(_local, "fitting", 0) + 1
    try:
        yield
    finally:
        _local.fitting -= 1


def vectorized_map(fn: Callable, elems: Any, **kwargs: Any):
    """``tf.vectorized_map(fn, elems, **kwargs)`` (tracing runs it in the thread that traces),
    without ``pfor``'s while-loop notice (see the module doc)."""
    _local.vectorizing = getattr(_local, "vectorizing", 0) + 1
    try:
        return tf.vectorized_map(fn, elems, **kwargs)
    finally:
        _local.vectorizing -= 1


#: The compiled functions that have run once (``first_run``).
_RAN: weakref.WeakSet = weakref.WeakSet()
#: One capture of file descriptor 2 at a time (a second thread runs uncaptured).
_CAPTURE = threading.Lock()


def first_run(compiled: Any, call: Callable[[], _T]) -> _T:
    """``call()``, the first run of ``compiled`` (a ``tf.function`` or concrete function),
    with the C++ ``RUN_NOTICES`` it prints dropped; later runs, runs while another thread
    captures, and all runs with ``TF_CPP_MIN_LOG_LEVEL=0``: ``call()`` as it is."""
    try:
        if compiled in _RAN or _quiet_import.full_log_asked():
            return call()
        _RAN.add(compiled)
    except TypeError:  # not weakly referable: not tracked
        return call()
    if not _CAPTURE.acquire(blocking=False):
        return call()
    try:
        return _quiet_import.without_notices(call, RUN_NOTICES)
    finally:
        _CAPTURE.release()


if not any(isinstance(f, _OurLogFilter) for f in tf.get_logger().filters):
    tf.get_logger().addFilter(_OurLogFilter())
