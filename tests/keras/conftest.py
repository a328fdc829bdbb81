import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()



@pytest.fixture
def float64():
    """Keras casts float array inputs to floatx(); float64 tests need floatx = float64."""
    old, old_policy = keras.backend.floatx(), keras.config.dtype_policy()
    keras.backend.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # the policy is cached when a layer is built
    yield
    keras.backend.set_floatx(old)
    keras.config.set_dtype_policy(old_policy)
