"""``batch_size="auto"`` (the default): mini-batches of 2·⌈P/k⌉ samples on large array data,
full batch once an epoch does not lower the full-data loss; everything else full batch."""

import math

import keras
import numpy as np
import pytest

import marquardt.keras as mk
from marquardt.keras import _batching
from marquardt._status import Status
from marquardt.keras._batching import (
    BatchPlan, BatchPolicy, check_batch_size, plan_batches)
from marquardt.keras._stopping import LMStopping

RNG = np.random.default_rng(0)
X = np.linspace(-1, 1, 400, dtype="float32")[:, None]
Y = (np.sin(3 * X) + 0.1 * RNG.normal(size=X.shape)).astype("float32")


def net_1_3_1():
    keras.utils.set_random_seed(2)
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(3, "tanh"),
                             keras.layers.Dense(1)])  # P = 10: auto batch 20, needs 160 rows


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """The policy's mechanics on small data: no floor of 1,000 residuals per batch (the floor
    itself: ``test_small_models_train_full_batch``)."""
    monkeypatch.setattr(_batching, "MIN_BATCH_RESIDUALS", 1)


def test_small_models_train_full_batch(monkeypatch):
    monkeypatch.setattr(_batching, "MIN_BATCH_RESIDUALS", 1000)
    tiny = plan_batches("auto", rows=400, k=1, p=3)  # 2·⌈3/1⌉ = 6 rows: raised to 1,000
    assert tiny.batch_size is None and not tiny.auto
    assert "400 rows are fewer than 8 batches of 1000" in tiny.why_full
    assert plan_batches("auto", rows=8_000, k=1, p=3) == BatchPlan(1000, True)
    assert plan_batches("auto", rows=8_000, k=4, p=3) == BatchPlan(250, True)  # 1,000 residuals
    assert plan_batches("auto", rows=20_000, k=1, p=481) == BatchPlan(1000, True)  # sinc: 20
    assert plan_batches("auto", rows=80_016, k=1, p=5_001) == BatchPlan(10_002, True)  # 2P


def test_plan_batches():
    assert plan_batches("auto", rows=20_000, k=1, p=481) == BatchPlan(1000, True)  # 20 equal
    assert plan_batches("auto", rows=7_696, k=1, p=481) == BatchPlan(962, True)  # 8 batches
    small = plan_batches("auto", rows=7_695, k=1, p=481)
    assert small.batch_size is None and not small.auto
    assert "7695 rows are fewer than 8 batches of 962" in small.why_full
    assert plan_batches("auto", rows=2_000, k=3, p=30) == BatchPlan(20, True)  # 2·⌈30/3⌉
    assert plan_batches("auto", rows=2_019, k=3, p=30) == BatchPlan(20, True)  # 100 batches
    assert plan_batches("auto", rows=175, k=1, p=10) == BatchPlan(21, True)  # 8 of ⌊175/8⌋
    assert plan_batches("full", rows=20_000, k=1, p=481) == BatchPlan(None, False)
    assert plan_batches(1000, rows=20_000, k=1, p=481) == BatchPlan(1000, False)
    trainlm = plan_batches("auto", rows=20_000, k=1, p=481, full_only="damping 'trainlm'")
    assert trainlm == BatchPlan(None, False, "damping 'trainlm'")
    assert plan_batches("auto", rows=None, k=None, p=481).batch_size is None  # a dataset


def test_check_batch_size():
    assert check_batch_size(None) == "full" and check_batch_size("full") == "full"
    assert check_batch_size("auto") == "auto" and check_batch_size(np.int64(7)) == 7
    with pytest.raises(ValueError, match=r"`batch_size` must be 'auto', 'full', None or a "
                                         r"positive integer. Received: batch_size='half'"):
        check_batch_size("half")
    with pytest.raises(ValueError, match=r"Received: batch_size=0"):
        check_batch_size(0)
    with pytest.raises(TypeError, match=r"Received: batch_size=2.5"):
        check_batch_size(2.5)
    with pytest.raises(TypeError, match=r"Received: batch_size=True"):
        check_batch_size(True)
    with pytest.raises(ValueError, match=r"Received: batch_size='half'"):
        mk.fit(net_1_3_1(), X, Y, loss="mse", epochs=1, batch_size="half", verbose=0)


class _Holder(keras.Model):
    """A stand-in for the LM wrapper: ``network`` and ``stop_training``."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.stop_training = False


def test_policy_switches_at_the_first_epoch_without_a_new_best_and_restores_it():
    net = net_1_3_1()
    policy = BatchPolicy(40, 400, auto=True)
    policy.set_model(_Holder(net))
    policy.set_params({"epochs": 10})
    weights = []
    for epoch, full in enumerate([1.0, 0.5, 0.5]):  # equal to the best is no improvement
        policy.on_epoch_begin(epoch)
        for v in net.trainable_variables:
            v.assign(v + 1.0)
        weights.append([v.numpy().copy() for v in net.trainable_variables])
        policy.on_epoch_end(epoch, {"full_loss": full})
        assert policy.model.stop_training == (epoch == 2)
    assert policy.switch_epoch == 2 and policy.continues
    assert "full-data loss 0.5 of epoch 3 is not below the best, 0.5" in policy.reason
    for v, w in zip(net.trainable_variables, weights[1]):  # epoch 2's weights are back
        np.testing.assert_array_equal(v.numpy(), w)
    assert policy.sizes == [40, 40, 40] and policy.current == 400 and not policy.mini


def test_an_epoch_of_damping_limited_batches_switches_instead_of_stopping():
    policy = BatchPolicy(40, 400, auto=True)
    stopper = LMStopping(mk.LMOptions())
    stopper.policy = policy
    stopper.set_model(_Holder(net_1_3_1()))
    stopper.on_train_begin()
    stopper.on_epoch_begin(0)
    for batch in range(10):
        stopper.on_train_batch_end(batch, {"lm_status": int(Status.DAMPING_LIMIT), "loss": 1.0})
    stopper.on_epoch_end(0, {})
    assert stopper.reason is None and not stopper.model.stop_training
    assert policy.pending == "every batch of epoch 1 hit the damping limit"


def test_auto_switches_to_full_batch_on_the_documented_condition():
    net = net_1_3_1()
    history = mk.fit(net, X, Y, loss="mse", epochs=12, verbose=0)
    sizes, full = history.history["batch_size"], history.history["full_loss"]
    assert len(sizes) == len(full) == 12
    switch = sizes.index(400) - 1  # the last mini-batch epoch
    assert switch >= 1 and sizes[:switch + 1] == [20] * (switch + 1)
    assert sizes[switch + 1:] == [400] * (11 - switch)
    best = [min(full[:i]) for i in range(1, switch + 1)]
    assert all(f < b for f, b in zip(full[1:switch], best))  # every earlier epoch improved
    assert full[switch] >= best[-1]  # the switch epoch did not
    # full batch starts from the best weights: LM does not raise the loss it starts from
    assert history.history["loss"][switch + 1] <= best[-1] * (1 + 1e-6)
    assert full[-1] == pytest.approx(float(np.mean((np.asarray(net(X)) - Y) ** 2)), rel=1e-4)


@pytest.mark.parametrize("options, batch_size, rows, expected", [
    (None, 50, 400, 50),  # an explicit batch size is kept, whatever the full-data loss does
    (None, None, 400, 400),  # None: full batch
    (None, "full", 400, 400),
    (mk.TRAINLM, "auto", 400, 400),  # MATLAB's trainlm trains full batch
    (None, "auto", 150, 150),  # fewer than 8 batches of 20 rows: full batch
])
def test_batch_sizes_that_stay(options, batch_size, rows, expected):
    history = mk.fit(net_1_3_1(), X[:rows], Y[:rows], loss="mse", epochs=3, verbose=0,
                     batch_size=batch_size, options=options)
    assert history.history["batch_size"] == [expected] * len(history.epoch)
    assert ("full_loss" in history.history) == (expected < rows)
    assert math.isfinite(history.history["loss"][-1])


@pytest.mark.parametrize("restore", [True, False])
def test_a_stop_by_another_callback_wins_and_the_best_epoch_is_restored_at_the_end(restore):
    """A stop asked for in the same epoch (here: by a callback before the policy) is a stop,
    not a switch; ending in the mini-batch phase restores the best epoch's weights, unless an
    EarlyStopping restores its own (``restore=False``)."""
    net = net_1_3_1()
    policy = BatchPolicy(40, 400, auto=True, restore=restore)
    policy.set_model(_Holder(net))
    policy.set_params({"epochs": 10})
    weights = []
    for epoch, full in enumerate([1.0, 0.5, 0.7]):
        policy.on_epoch_begin(epoch)
        for v in net.trainable_variables:
            v.assign(v + 1.0)
        weights.append([v.numpy().copy() for v in net.trainable_variables])
        policy.model.stop_training = epoch == 2  # e.g. EarlyStopping, in the same epoch
        policy.on_epoch_end(epoch, {"full_loss": full})
    assert policy.switch_epoch is None and not policy.continues and policy.mini
    policy.on_train_end()
    for v, w in zip(net.trainable_variables, weights[1 if restore else 2]):
        np.testing.assert_array_equal(v.numpy(), w)


def test_an_interrupt_in_the_mini_batch_phase_restores_the_best_epoch_if_it_was_better():
    """Ctrl-C skips ``on_train_end``: the policy compares the full-data loss at the interrupt
    with the best epoch's, as at a normal end (it used to leave the last mini-batch weights)."""
    net = net_1_3_1()
    policy = BatchPolicy(40, 400, auto=True)
    policy.set_model(_Holder(net))
    policy.set_params({"epochs": 10})
    for epoch, full in enumerate([1.0, 0.5]):
        policy.on_epoch_begin(epoch)
        for v in net.trainable_variables:
            v.assign(v + 1.0)
        policy.on_epoch_end(epoch, {"full_loss": full})
    best = [v.numpy().copy() for v in net.trainable_variables]
    for v in net.trainable_variables:  # the steps of the interrupted epoch
        v.assign(v + 1.0)
    assert policy.restore_after_interrupt(lambda: 0.4) is None  # better: kept
    assert not np.array_equal(net.trainable_variables[0].numpy(), best[0])
    for at_interrupt in (0.7, float("nan")):
        said = policy.restore_after_interrupt(lambda: at_interrupt)
        assert said.startswith("the weights of epoch 2, the best full-data loss (0.5; ")
        for v, w in zip(net.trainable_variables, best):
            np.testing.assert_array_equal(v.numpy(), w)
    assert BatchPolicy(40, 400, auto=True, restore=False).restore_after_interrupt(
        lambda: 1.0) is None  # an EarlyStopping restores its own


@pytest.mark.slow
def test_ctrl_c_in_the_mini_batch_phase_keeps_the_best_epoch():
    class Interrupt(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches, self.full = 0, []

        def on_epoch_end(self, epoch, logs=None):
            self.full.append(logs["full_loss"])

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == 31:  # 11th batch of epoch 2 (20 a pass): worse than epoch 1
                raise KeyboardInterrupt

    net, interrupt = net_1_3_1(), Interrupt()
    with pytest.raises(KeyboardInterrupt):
        mk.fit(net, X, Y, loss="mse", epochs=12, verbose=0, callbacks=[interrupt])
    held = float(np.mean((np.asarray(net(X)) - Y) ** 2))
    assert interrupt.full and held <= min(interrupt.full) * (1 + 1e-5)
