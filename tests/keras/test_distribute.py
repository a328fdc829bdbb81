"""Data-parallel LM under tf.distribute (docs/distributed.md).

The replicas' runs are in fresh processes (``distribute_worker.py``): logical devices and
``MultiWorkerMirroredStrategy`` must be set up before TensorFlow initialises its devices.
Each compares, against one device: the weights after 10 full-batch iterations of a float64
network (to 1e-10), the accept/reject sequence (``attempts``, ``lm_status``), the History,
validation, ``ModelCheckpoint``, ``CSVLogger`` and ``EarlyStopping`` (restoring its best
weights).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import marquardt
import marquardt.keras as mk
from marquardt._backend.numpy import xp as npx
from marquardt._core import iteration as core
from marquardt._core import measures
from marquardt._core.records import LoopConfig
from marquardt._damping import Nielsen
from marquardt._solvers import CholeskySolver
from marquardt.keras import _validation

from keras_helpers import mlp

WORKER = os.path.join(os.path.dirname(__file__), "distribute_worker.py")
SRC = os.path.dirname(os.path.dirname(marquardt.__file__))


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _flat(weights):
    return np.concatenate([np.ravel(w) for w in weights])


def _assert_same_training(single, distributed):
    np.testing.assert_allclose(_flat(distributed["weights"]), _flat(single["weights"]),
                               rtol=0, atol=1e-10)
    hs, hd = single["history"], distributed["history"]
    assert hd["attempts"] == hs["attempts"]
    assert hd["cholesky_failures"] == hs["cholesky_failures"]
    assert hd["lm_status"] == hs["lm_status"]
    assert len(hd["loss"]) == 10
    for key in ("loss", "mae", "val_loss", "val_mae", "lam", "grad_norm", "step_norm"):
        np.testing.assert_allclose(hd[key], hs[key], rtol=1e-9, err_msg=key)
    assert distributed["stop_reason"] == single["stop_reason"]
    # ModelCheckpoint saved the last weights; CSVLogger wrote the History's losses
    np.testing.assert_array_equal(_flat(distributed["checkpoint"]),
                                  _flat(distributed["weights"]))
    np.testing.assert_allclose(distributed["csv_loss"], hd["loss"], rtol=1e-12)
    # EarlyStopping stopped after 3 epochs and restored the weights of the first
    assert distributed["early_epochs"] == single["early_epochs"] == 3
    np.testing.assert_allclose(_flat(distributed["early_weights"]),
                               _flat(single["early_weights"]), rtol=0, atol=1e-10)


@pytest.mark.slow
def test_mirrored_strategy_on_two_devices_equals_one_device(tmp_path):
    out = tmp_path / "mirrored.json"
    subprocess.run([sys.executable, WORKER, "mirrored", str(out)], env=_env(), check=True,
                   timeout=600)
    record = json.loads(out.read_text())
    assert record["replicas"] == 2
    _assert_same_training(record["single"], record["distributed"])
    # mini-batch LM by the same rule: each global batch split over the replicas
    single, dist = record["single"], record["distributed"]
    np.testing.assert_allclose(_flat(dist["minibatch_weights"]),
                               _flat(single["minibatch_weights"]), rtol=0, atol=1e-10)
    assert dist["minibatch_history"]["attempts"] == single["minibatch_history"]["attempts"]


def _free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_on_two_processes_equals_one_device(tmp_path):
    ref = tmp_path / "single.json"
    single = subprocess.Popen([sys.executable, WORKER, "single", str(ref)], env=_env())
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        (tmp_path / f"w{index}").mkdir()
        workers.append(subprocess.Popen(
            [sys.executable, WORKER, "multiworker", str(tmp_path / f"w{index}" / "out.json")],
            env=_env(TF_CONFIG=config)))
    try:
        codes = [p.wait(timeout=600) for p in workers + [single]]
    finally:
        for p in workers + [single]:
            if p.poll() is None:
                p.kill()
    assert codes == [0, 0, 0]
    reference = json.loads(ref.read_text())["single"]
    for index in range(2):
        record = json.loads((tmp_path / f"w{index}" / "out.json").read_text())
        assert record["replicas"] == 2
        _assert_same_training(reference, record["distributed"])


def test_unsupported_strategy_is_refused():
    strategy = tf.distribute.experimental.CentralStorageStrategy()
    x = np.linspace(-1.0, 1.0, 40, dtype="float32")[:, None]
    with strategy.scope():
        lm = mk.LMModel(mlp((3,)))
        lm.compile(loss="mse")
    with pytest.raises(ValueError, match=r"does not support CentralStorageStrategy.*"
                                         r"Received: strategy=CentralStorageStrategy"):
        lm.fit(x, np.sin(x), epochs=1, verbose=0)


def test_no_strategy_and_one_device_strategy_are_accepted():
    x = np.linspace(-1.0, 1.0, 40, dtype="float32")[:, None]
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        lm = mk.LMModel(mlp((3,)))
        lm.compile(loss="mse")
    history = lm.fit(x, np.sin(x), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(per_sample=True, bayes=True, kernel="auto"),
     r"Bayesian regularisation .*Received: regularization='bayesian' under "
     r"MirroredStrategy with 2"),
    (dict(per_sample=True, bayes=False, kernel=True),
     r"`kernel` must be False or 'auto'.*Received: kernel=True under MirroredStrategy"),
    (dict(per_sample=False, bayes=False, kernel="auto"),
     r"depend on their own sample only.*Received: a full-Jacobian step under "
     r"MirroredStrategy with 2 replicas"),
])
def test_options_data_parallel_lm_cannot_split_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _validation.check_distributed("MirroredStrategy", 2, **kwargs)


def test_uneven_split_is_refused():
    _validation.check_even_split(400, 2)
    _validation.check_even_split(401, 1)
    with pytest.raises(ValueError, match=r"batch of 401 samples must split evenly over the "
                                         r"2 replicas.*Received: a batch of 401 samples on 2"):
        _validation.check_even_split(401, 2)


def test_judge_on_shards_with_a_sum_hook_equals_judge_on_the_whole():
    """``core.judge(reduce=...)``: two shards of the residuals, each adding the other's sums,
    take the whole problem's decision, λ and candidate cost."""
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 3.0, 40)
    y = 2.0 * np.exp(-1.3 * t) + 0.01 * rng.standard_normal(40)

    def residuals(x):
        return (x[:, :1] * np.exp(-x[:, 1:] * t) - y)

    def jacobian(x):
        e = np.exp(-x[:, 1:] * t)
        return np.stack([e, -x[:, :1] * t * e], axis=-1)

    cfg = LoopConfig(damping=Nielsen(), solver=CholeskySolver(), scaling="marquardt",
                     loss="linear", f_scale=1.0, ftol=1e-8, xtol=1e-8, gtol=1e-8,
                     max_nfev=100, bounded=False)
    decisions = []
    # a plain step; a far start with λ ≈ 0 (a Gauss-Newton step that overshoots); a candidate
    # whose residuals are NaN in the first shard only
    for x0, shrink, nan in (([1.0, 0.5], 1.0, False), ([1.0, 5.0], 1e-9, False),
                            ([1.0, 0.5], 1.0, True)):
        x = np.array([x0])
        s = core.start(cfg, npx, x, residuals(x), jacobian(x), None, None, None)
        prep, c = core.prepare(cfg, npx, s, None, None, None)
        c = c._replace(lam=c.lam * shrink)
        x_try = core.propose(cfg, npx, prep, s, c, None, None)
        f_try = residuals(x_try)
        if nan:
            f_try[0, 3] = np.nan
        whole = core.judge(cfg, npx, prep, s, c, x_try, f_try)
        decisions.append(bool(whole.accepted[0]))
        shards = (slice(0, 17), slice(17, None))
        sums = [np.stack(measures.shard_sums(cfg, npx, s.f[:, k], f_try[:, k])) for k in shards]
        for mine, other in ((0, 1), (1, 0)):
            k = shards[mine]
            part = core.judge(cfg, npx, prep, s._replace(f=s.f[:, k]),
                              c._replace(f_new=c.f_new[:, k]), x_try, f_try[:, k],
                              reduce=lambda local, other=other: local + sums[other])
            assert bool(part.accepted[0]) == bool(whole.accepted[0])
            assert int(part.status[0]) == int(whole.status[0])
            for field in ("lam", "nu", "cost_new", "rho", "step", "cost_try_last"):
                np.testing.assert_allclose(getattr(part, field), getattr(whole, field),
                                           rtol=1e-13, err_msg=field)
            np.testing.assert_array_equal(part.x_new, whole.x_new)
    assert decisions == [True, False, False]
