"""Data-parallel LM under ``tf.distribute``: the all-reduce hooks of the Keras step.

Glossary (as in ``keras_step``): w the P weights; r the residuals, split over R replicas,
r = [r⁽¹⁾; …; r⁽ᴿ⁾], each replica holding the rows of its shard of the global batch;
A = JᵀJ; g = Jᵀr; F = ½‖r‖².

Everything the LM iteration needs from the residuals is a sum over them::

    A = Σᵣ J⁽ʳ⁾ᵀJ⁽ʳ⁾,   g = Σᵣ J⁽ʳ⁾ᵀr⁽ʳ⁾,   F = Σᵣ ½‖r⁽ʳ⁾‖²,
    F(w) − F(w + δ) = Σᵣ ½ Σᵢ (rᵢ⁽ʳ⁾ − r̂ᵢ⁽ʳ⁾)(rᵢ⁽ʳ⁾ + r̂ᵢ⁽ʳ⁾),

so each replica forms its shard's part (A and g in row chunks, as on one device), the replicas
add them with the replica context's ``all_reduce`` (SUM), and every replica then holds the
same A, g and F, solves the same damped system, and, after one more all-reduce of three
numbers per attempt (the candidate's cost, its reduction and its count of non-finite
residuals, ``core.judge(reduce=...)``), takes the same accept/reject decision: the weights
stay identical on every replica without being broadcast. Keras' losses are means over the
batch; the step divides by the *global* sample count, itself all-reduced once per step.

Bytes moved per iteration: (P² + P + 1) floats of the normal equations' dtype (8 bytes by
default) for A, g and F, one count, and 3 floats per attempt.

TensorFlow refuses a synchronisation point inside control flow under ``MirroredStrategy``
and ``MultiWorkerMirroredStrategy`` (their ``merge_call``, unless XLA compiles the step on
GPUs), so under a strategy the attempts loop is unrolled (``max_attempts`` copies): each
attempt's solve and forward pass sit in a ``tf.cond`` that skips them once the iteration is
over (the same predicate on every replica), and its all-reduce sits outside it.

Supported: ``MirroredStrategy`` (devices of one host), ``MultiWorkerMirroredStrategy``
(hosts, ``TF_CONFIG``), ``OneDeviceStrategy`` and no strategy. Others are refused
(``check_strategy``) until they are tested.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["SUPPORTED_STRATEGIES", "replica_count", "replica_sum", "check_strategy",
           "symbolic_build", "reducible_logs"]

#: the strategies whose LM training is tested (tests/keras/test_distribute.py)
SUPPORTED_STRATEGIES = ("MirroredStrategy", "MultiWorkerMirroredStrategy",
                        "OneDeviceStrategy")


def replica_count() -> int:
    """R, the replicas in sync in the current replica context (1 outside a strategy)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def replica_sum(value):
    """Σ over the replicas of ``value`` (an all-reduce, SUM); ``value`` itself for one."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _supported(strategy) -> bool:
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return True  # the default strategy: no distribution
    return isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy,
                                 tf.distribute.OneDeviceStrategy))


def check_strategy(strategy) -> None:
    """Refuses a strategy LM training does not support.

    Raises:
        ValueError: naming the strategy and the supported ones.
    """
    if not _supported(strategy):
        raise ValueError(
            f"Levenberg-Marquardt training does not support {type(strategy).__name__}: its "
            "replicas would not share the normal equations and the accept/reject decision. "
            f"Supported: {', '.join(SUPPORTED_STRATEGIES)} (see docs/distributed.md). "
            f"Received: strategy={type(strategy).__name__}")


def symbolic_build(model, iterator=None, data_batch=None) -> None:
    """Builds ``model``'s compiled loss and metrics from one replica's part of the first batch.

    Keras' own ``_maybe_symbolic_build`` averages the per-replica parts of the first batch
    (``strategy.reduce("MEAN", ...)``) only to learn its structure and shapes; that fails when
    the parts differ in size (an odd batch on two replicas) and, under
    ``MultiWorkerMirroredStrategy``, for a batch that is a tuple ``(x, y, w)``
    (``ValueError: Attempt to convert a value (PerReplica...)``, Keras 3.15). Any one
    replica's part has the structure and builds the same metrics.
    """
    strategy = model.distribute_strategy
    if iterator is not None:
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(
                lambda v: (strategy.experimental_local_results(v)[0]
                           if isinstance(v, tf.distribute.DistributedValues) else v), batch)
            break
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)


def _multi_worker(strategy) -> bool:
    """``strategy`` is a ``MultiWorkerMirroredStrategy`` running on more than one worker."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker")) > 1


def reducible_logs(logs: dict) -> dict:
    """The logs of a training or evaluation step in the form Keras can reduce over replicas.

    On several workers Keras 3.15 reduces each log with ``strategy.reduce("MEAN", v,
    axis=0)``, which fails for a scalar ("Invalid reduction dimension 0 for input with 0
    dimensions"); a one-element vector reduces to the scalar mean. Elsewhere: as they are.
    """
    if not _multi_worker(tf.distribute.get_strategy()):
        return logs
    return {k: tf.reshape(v, [1]) for k, v in logs.items()}
