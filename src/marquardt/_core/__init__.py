"""The Levenberg-Marquardt core: one iteration, written once, run by every executor.

* ``records``: the configuration (``LoopConfig``), the state (``LoopState``) and the history
  fields, shared by every surface.
* ``iteration``: the iteration as pure functions of the state, written against an array
  namespace ``xp`` (``marquardt._xp``): ``start``, ``prepare``, ``propose``, ``judge``,
  ``finish``.
* ``host``: the host executor (NumPy arrays, a Python loop): single fits and NumPy batches.

Executors own the loops, the evaluations of the residual function and compilation; the
TensorFlow executor (``marquardt._backend.tensorflow.solve_loop``) runs the same functions
inside ``tf.while_loop`` for batches and accelerators.
"""
