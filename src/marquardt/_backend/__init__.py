"""Backend-specific kernels. Only TensorFlow exists today; see ``tensorflow/``."""
