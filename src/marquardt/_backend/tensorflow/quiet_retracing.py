"""Drop TensorFlow's "triggered tf.function retracing" warning for our own compiled functions.

Each problem kind gets its own compiled solver and residual functions by design (the
executors' caches, ``marquardt._cache``), and the SciPy bridge traces its ``tf.vectorized_map``
(TensorFlow's ``pfor``) once per model: TensorFlow counts those as retracings of one Python
function and would warn users for nothing. A user's function compiled anew at every fit is
warned about by marquardt itself (``marquardt._recompile``). Installed on import, once.
"""

from __future__ import annotations

import logging

import tensorflow as tf

__all__ = ["OURS"]

#: The qualified names of our functions whose retracing is by design.
OURS = ("warm_solver.<locals>", "build_stepper.<locals>", "compiled_evaluator.<locals>",
        "pfor.<locals>")


class _OurRetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("retracing" in message and any(name in message for name in OURS))


if not any(isinstance(f, _OurRetracingFilter) for f in tf.get_logger().filters):
    tf.get_logger().addFilter(_OurRetracingFilter())
