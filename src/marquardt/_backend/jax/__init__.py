"""The JAX backend: the LM core under ``jax.jit`` (see ``marquardt._xp``)."""
