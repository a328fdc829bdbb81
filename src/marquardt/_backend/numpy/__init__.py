"""The NumPy backend: the host namespace (``xp``) and the host executor of the LM core."""
