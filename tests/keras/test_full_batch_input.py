"""Full-batch array input is fed as one cached batch: same training, Keras' validation split."""

import keras
import numpy as np
import pytest

import marquardt.keras as mk
from keras_helpers import mlp


def data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 1)).astype("float32")
    return x, np.sin(3 * x)


def test_array_input_trains_like_a_one_batch_dataset():
    import tensorflow as tf

    x, y = data()
    keras.utils.set_random_seed(1)
    a = mlp((5,))
    keras.utils.set_random_seed(1)
    b = mlp((5,))
    ha = mk.fit(a, x, y, loss="mse", epochs=8, verbose=0)
    hb = mk.fit(b, tf.data.Dataset.from_tensors((x, y)), loss="mse", epochs=8, verbose=0)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


class _Count(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


@pytest.mark.parametrize("steps, want", [(None, 1), (3, 3)])
def test_full_batch_epoch_runs_steps_per_epoch_iterations_of_one_repeated_batch(steps, want):
    x, y = data()
    count = _Count()
    extra = {} if steps is None else {"steps_per_epoch": steps}
    model = mk.LMModel(mlp((4,)))
    model.compile(loss="mse")
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[count],
                        validation_data=data(10, seed=3), **extra)
    assert history.params["steps"] == want
    assert count.batches == 2 * want
    assert len(history.history["val_loss"]) == 2  # validation is not repeated: it ends


def test_validation_split_takes_the_last_rows_as_keras_does():
    x, y = data(40)
    net = mlp((4,))
    history = mk.fit(net, x, y, loss="mse", epochs=3, verbose=0, validation_split=0.25)
    # Keras' rule: the last floor(40 · 0.25) = 10 rows validate, the first 30 train.
    val = keras.losses.MeanSquaredError()(y[30:], net(x[30:])).numpy()
    assert history.history["val_loss"][-1] == pytest.approx(float(val), rel=1e-5)
    train = keras.losses.MeanSquaredError()(y[:30], net(x[:30])).numpy()
    assert history.history["loss"][-1] == pytest.approx(float(train), rel=1e-5)


def test_array_validation_data_and_sample_weight():
    x, y = data(30)
    xv, yv = data(12, seed=5)
    w = np.linspace(0.5, 2.0, 30).astype("float32")
    net = mlp((4,))
    history = mk.fit(net, x, y, loss="mse", epochs=2, verbose=0, sample_weight=w,
                     validation_data=(xv, yv))
    val = keras.losses.MeanSquaredError()(yv, net(xv)).numpy()
    assert history.history["val_loss"][-1] == pytest.approx(float(val), rel=1e-5)


class _Halves(keras.utils.PyDataset):
    """Two batches per epoch, with no `.shape` of its own."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 2

    def __getitem__(self, i):
        half = len(self.x) // 2
        return self.x[i * half:(i + 1) * half], self.y[i * half:(i + 1) * half]


def test_pydataset_input_trains_as_mini_batches():
    x, y = data()
    keras.utils.set_random_seed(1)
    net = mlp((5,))
    start = float(np.mean((net.predict(x, verbose=0) - y) ** 2))
    history = mk.fit(net, _Halves(x, y), loss="mse", epochs=5, verbose=0)
    assert len(history.history["loss"]) == 5
    assert float(np.mean((net.predict(x, verbose=0) - y) ** 2)) < start


@pytest.mark.parametrize("split", [0.999, 0.99])
def test_validation_split_that_empties_a_side_is_refused(split):
    x, y = data()
    with pytest.raises(ValueError, match=r"`validation_split` must leave at least one training "
                                         r"and one validation row of the 50.*Received: "
                                         r"validation_split="):
        mk.fit(mlp((5,)), x, y, loss="mse", epochs=1, verbose=0, validation_split=split)


@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatch_arrays_give_every_row_once_per_epoch(shuffle):
    from marquardt.keras._data import array_inputs

    x = np.arange(50, dtype="float32")[:, None]
    train, validation, steps = array_inputs(x, 2 * x, None, batch_size=16, shuffle=shuffle,
                                            validation_split=0.0, validation_data=None)
    assert steps == 4 and validation is None  # 16 + 16 + 16 + 2
    batches = iter(train)
    passes = []
    for _ in range(2):
        rows = [next(batches) for _ in range(steps)]
        assert [int(b[0].shape[0]) for b in rows] == [16, 16, 16, 2]
        seen = np.concatenate([b[0].numpy()[:, 0] for b in rows])
        np.testing.assert_array_equal(np.sort(seen), np.arange(50))  # each row once
        np.testing.assert_array_equal(np.concatenate([b[1].numpy()[:, 0] for b in rows]),
                                      2 * seen)  # rows stay paired
        passes.append(seen)
    if shuffle:  # a new order each pass
        assert not np.array_equal(passes[0], passes[1])
    else:
        np.testing.assert_array_equal(passes[0], np.arange(50))
        np.testing.assert_array_equal(passes[1], np.arange(50))


def test_minibatch_fit_runs_one_pass_per_epoch_with_batched_validation():
    x, y = data(50)
    count = _Count()
    model = mk.LMModel(mlp((4,)))
    model.compile(loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[count],
                        validation_split=0.2)
    assert history.params["steps"] == 3  # 40 training rows: 16 + 16 + 8
    assert count.batches == 6
    net = model.network
    val = keras.losses.MeanSquaredError()(y[40:], net(x[40:])).numpy()
    assert history.history["val_loss"][-1] == pytest.approx(float(val), rel=1e-5)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_pydataset_validation_data_goes_to_keras_as_it_is(batch_size):
    x, y = data(48)
    xv, yv = data(20, seed=7)
    net = mlp((4,))
    history = mk.fit(net, x, y, loss="mse", epochs=2, verbose=0, batch_size=batch_size,
                     validation_data=_Halves(xv, yv))
    # Keras averages the two halves' losses (equal sizes): the MSE over all 20 rows
    val = keras.losses.MeanSquaredError()(yv, net(xv)).numpy()
    assert history.history["val_loss"][-1] == pytest.approx(float(val), rel=1e-5)
