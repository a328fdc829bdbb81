"""LM training under tf.distribute, run in a fresh process (tests/keras/test_distribute.py).

Logical devices and ``MultiWorkerMirroredStrategy`` must be set up before TensorFlow
initialises its devices, so the tests run this script with ``sys.executable``::

    python distribute_worker.py mirrored OUT.json        # 2 logical CPUs: one device, then
                                                         # MirroredStrategy on both
    TF_CONFIG=... python distribute_worker.py multiworker OUT.json   # one worker of several
    python distribute_worker.py single OUT.json          # one device only

Each run trains the same float64 network on the same data (400 samples, with sample
weights) for ``EPOCHS`` full-batch LM iterations on 320 of them, validated on the other 80,
with ``ModelCheckpoint`` and a ``CSVLogger``, then fits 4 epochs more with an
``EarlyStopping`` that stops after 3 and restores the weights of the first (``mirrored``: then 2 epochs of mini-batch LM, batches of 100 in order). It
writes a JSON record: the weights after the 10 iterations, the History, the checkpointed
weights, the CSV's losses, and the weights and epoch count after the early-stopped fit (and
the mini-batch run's weights and History).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

EPOCHS = 10
N = 400


def _setup(mode):
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    if mode == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (N, 2))
    y = np.sin(2.0 * x[:, :1]) * np.cos(x[:, 1:])
    w = rng.uniform(0.5, 2.0, N)
    return x, y, w


def _train(strategy, workdir, tag, minibatch=False):
    import keras

    import marquardt.keras as mk

    x, y, w = _data()
    scope = strategy.scope() if strategy is not None else tf.distribute.get_strategy().scope()
    with scope:
        keras.utils.set_random_seed(1)
        net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="tanh"),
                                keras.layers.Dense(1)])
        lm = mk.LMModel(net)
        lm.compile(loss="mse", metrics=["mae"])
    ckpt = os.path.join(workdir, f"{tag}.weights.h5")
    csv = os.path.join(workdir, f"{tag}.csv")
    callbacks = [keras.callbacks.ModelCheckpoint(ckpt, save_weights_only=True),
                 keras.callbacks.CSVLogger(csv)]
    history = lm.fit(x, y, sample_weight=w, epochs=EPOCHS, verbose=0, validation_split=0.2,
                     callbacks=callbacks)
    weights = [v.tolist() for v in net.get_weights()]
    saved = keras.models.clone_model(net)  # the checkpoint holds the LMModel's weights
    mk.LMModel(saved).load_weights(ckpt)
    with open(csv) as f:
        rows = f.read().splitlines()
    header = rows[0].split(",")
    csv_loss = [float(r.split(",")[header.index("loss")]) for r in rows[1:]]
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e9, patience=2,
                                         restore_best_weights=True)
    early = lm.fit(x, y, sample_weight=w, epochs=4, verbose=0, callbacks=[stop])
    record = {"early_epochs": len(early.epoch),
              "early_weights": [v.tolist() for v in net.get_weights()]}
    if minibatch:  # 2 epochs of 4 mini-batches of 100, in order
        mini = lm.fit(x, y, sample_weight=w, epochs=2, batch_size=100, shuffle=False,
                      verbose=0)
        record["minibatch_weights"] = [v.tolist() for v in net.get_weights()]
        record["minibatch_history"] = {k: [float(v) for v in vals]
                                       for k, vals in mini.history.items()}
    return record | {
        "weights": weights,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "stop_reason": history.stop_reason,
        "checkpoint": [v.tolist() for v in saved.get_weights()],
        "csv_loss": csv_loss,
    }


def main(mode, out):
    strategy = _setup(mode)
    import keras

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    workdir = os.path.dirname(os.path.abspath(out))
    record = {}
    if mode == "mirrored":
        record["single"] = _train(None, workdir, "single", minibatch=True)
        record["replicas"] = strategy.num_replicas_in_sync
        record["distributed"] = _train(strategy, workdir, "mirrored", minibatch=True)
    elif mode == "multiworker":
        task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        record["replicas"] = strategy.num_replicas_in_sync
        record["distributed"] = _train(strategy, workdir, f"worker{task}")
    else:
        record["single"] = _train(None, workdir, "single")
    with open(out, "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
