"""TensorFlow-specific code: tapes, ``tf.function``, ``tf.while_loop`` and raw ``tf.linalg``.

Nothing outside this folder (and the Keras train step it hosts) touches those APIs. Importing
it without TensorFlow installed raises an ImportError that says how to install it.
"""

import importlib.util as _util

if _util.find_spec("tensorflow") is None:  # pragma: no cover - depends on the environment
    from marquardt._install import install_command as _install_command

    raise ImportError(
        "This part of marquardt needs TensorFlow (a model written with TensorFlow ops, "
        "marquardt.keras, marquardt.scipy), which is not installed. "
        "Install one build:\n"
        f"    {_install_command('cpu')}      # tensorflow-cpu: CPU only, smaller\n"
        f"    {_install_command('tensorflow')}      # the full build (GPU on Linux)\n"
        "(or pip install tensorflow-cpu / tensorflow directly). Models written in NumPy "
        "need no TensorFlow."
    )
