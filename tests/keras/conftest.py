import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    # Keras' state only: its default free_memory=True also runs gc.collect(), 0.25-0.35 s a
    # test once TensorFlow's objects fill the heap (a quarter of this folder's CPU time); the
    # garbage is collected by Python's own thresholds instead, and no test here counts objects
    keras.backend.clear_session(free_memory=False)



@pytest.fixture
def float64():
    """Keras casts float array inputs to floatx(); float64 tests need floatx = float64."""
    old, old_policy = keras.backend.floatx(), keras.config.dtype_policy()
    keras.backend.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # the policy is cached when a layer is built
    yield
    keras.backend.set_floatx(old)
    keras.config.set_dtype_policy(old_policy)
