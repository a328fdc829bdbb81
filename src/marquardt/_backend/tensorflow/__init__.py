"""TensorFlow-specific code: tapes, ``tf.function``, ``tf.while_loop`` and raw ``tf.linalg``.

Nothing outside this folder (and the Keras train step it hosts) touches those APIs.
"""
