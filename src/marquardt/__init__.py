"""Levenberg-Marquardt for TensorFlow and Keras 3."""
