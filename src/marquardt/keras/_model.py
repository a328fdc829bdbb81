"""``LMModel``: a Keras model wrapper whose ``train_step`` is one Levenberg-Marquardt iteration.

The wrapper shares its weights with the model it wraps, so after ``fit`` the user's own
model holds the trained weights and saves and loads as a plain Keras model. Keras' ``fit``,
``evaluate`` and ``predict`` run unchanged (callbacks, History, progress bar, validation,
sample and class weights, metrics, NumPy or ``tf.data`` input); ``fit`` only adds, around
Keras' own loop: front-door checks, the batch policy (``batch_size="auto"``: mini-batches on
large data, then full batch, ``_batching``), mini-batches of at least
one residual per weight with ``full_loss`` logged (``_minibatch``), warnings about Dropout and
batch normalisation (``_layers``), the ``LMStopping`` callback, and on Ctrl-C the best weights
an ``EarlyStopping`` kept before the interrupt is raised again.

Example:
    >>> net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(20, "tanh"),
    ...                         keras.layers.Dense(1)])
    >>> lm = LMModel(net)
    >>> lm.compile(loss="mse")
    >>> history = lm.fit(x, y, epochs=50)          # batch_size="auto"
    >>> net.save("net.keras")                      # a plain Keras model
"""

from __future__ import annotations

import math

import keras
import numpy as np

from marquardt._damping import TrainLM
from marquardt.keras import _backends, _bayes, _validation
from marquardt.keras._batching import (
    BatchPolicy, PhasedCallbacks, check_batch_size, plan_batches)
from marquardt.keras._data import phase_inputs
from marquardt.keras._epoch_sums import EpochSums
from marquardt.keras._probe_inputs import check_inputs
from marquardt.keras._layers import coupled_layers, warn_about_layers
from marquardt.keras._minibatch import FullDataLoss, safe_batch_size, warn_small_batches
from marquardt.keras._options import (
    LMOptions, options_from_config, options_to_config, resolve_options)
from marquardt.keras._residuals import model_residuals, residuals_for_loss
from marquardt.keras._stopping import (
    LMStopping, final_reason, log_reason, restore_best_weights)

__all__ = ["LMModel"]


class _NoOptimizer:
    """The optimizer slot of Keras' JAX trainer state for LM (an empty list of variables)."""

    variables: list = []
    built = True


@keras.saving.register_keras_serializable(package="marquardt")
class LMModel(keras.Model):
    """Train a Keras model with Levenberg-Marquardt inside Keras' ``fit``.

    Args:
        model: the Keras model to train (built: call it once or give it an ``Input``).
        residual: optional custom residual ``residual(model_fn, x, y) -> r``, where
            ``model_fn(inputs)`` evaluates the network at the weights being tried (it may be
            differentiated with a nested ``tf.GradientTape`` on TensorFlow, ``jax.grad`` on JAX,
            for physics-informed networks).
            The cost is ½Σr² over the batch. Leave ``None`` to use the compiled Keras loss.
        options: an ``LMOptions`` (e.g. ``marquardt.keras.TRAINLM``).
        **overrides: fields of ``LMOptions`` (``damping``, ``scaling``, ``max_attempts``,
            ``goal``, ``min_grad``, ``max_time``, ``jacobian``, ``memory_limit``,
            ``precision``, ``training``, ``kernel``).

    After ``compile(loss=..., metrics=...)`` (no optimizer: LM is the optimizer), ``fit``
    trains with ``batch_size="auto"`` by default: full batch on small data, mini-batches then
    full batch on large data (``docs/keras.md``, "Full batch and mini-batch"); ``"full"`` or
    None is always full batch, a number mini-batch LM throughout. Logs per epoch: ``loss``
    (the Keras loss *after* the iteration), metrics at the same weights, ``lam`` (λ for the
    next iteration), ``attempts``, ``grad_norm`` (‖Jᵀr‖ at the start of the iteration),
    ``step_norm``, ``cholesky_failures`` (attempts whose Cholesky factorisation of A + λD
    failed and the eigen-decomposition solved instead; summed over the epoch's batches),
    ``full_loss`` (mini-batch from arrays: the loss over all training rows),
    and in ``history.history`` only, not in the progress bar, ``lm_status``
    (``marquardt._status.Status`` code, -100 while running) and ``batch_size`` (array input:
    the samples per batch of each epoch). Regularisation losses are refused;
    batch-normalisation statistics are updated with ``training=True``.

    References:
        K. Levenberg, Quart. Appl. Math. 2, 164-168 (1944). D. W. Marquardt, J. SIAM 11,
        431-441 (1963). M. T. Hagan, M. B. Menhaj, IEEE Trans. Neural Networks 5, 989 (1994).
    """

    def __init__(self, model, residual=None, options: LMOptions | None = None, **overrides):
        name = overrides.pop("name", None)
        _backends.check()
        super().__init__(name=name or f"lm_{model.name}")
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        if residual is not None and not callable(residual):
            raise TypeError(f"`residual` must be callable. Received: residual={residual!r}")
        self.network = model
        self.lm_options = resolve_options(options, **overrides)
        self.lm_custom_residual = residual
        self.lm_loss_residual = None
        self.lm_wants_predictions = False
        self.lm_output_losses = False
        self.stop_reason = None
        self._lm_variables_ready = False
        if _bayes.enabled(self.lm_options):
            _bayes.setup(self)
        if model.built and model.weights:
            self._create_lm_variables()
            self.built = True

    # ---- Keras model plumbing -------------------------------------------------------------
    def _create_lm_variables(self):
        p = int(sum(np.prod(v.shape) for v in self.network.trainable_variables))
        dtype = _backends.state_dtype()
        self.lm_lambda = self.add_weight(shape=(), initializer="zeros", dtype=dtype,
                                         trainable=False, name="lm_lambda")
        self.lm_nu = self.add_weight(shape=(), initializer="ones", dtype=dtype,
                                     trainable=False, name="lm_nu")
        self.lm_scale = self.add_weight(shape=(max(p, 1),), initializer="ones",
                                        dtype=dtype, trainable=False, name="lm_scale")
        self.lm_started = self.add_weight(shape=(), initializer="zeros", dtype=dtype,
                                          trainable=False, name="lm_started")
        if _bayes.enabled(self.lm_options):
            _bayes.create_variables(self, p)
        self._lm_variables_ready = True

    def build(self, input_shape):
        if not self.network.built:
            self.network.build(input_shape)
        if not self._lm_variables_ready:
            self._create_lm_variables()
        self.built = True

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compute_output_spec(self, inputs, training=False):
        return self.network.compute_output_spec(inputs, training=training)

    def compile(self, loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                **kwargs):
        """Like ``keras.Model.compile``, without an optimizer (LM is the optimizer).

        Raises:
            ValueError: an optimizer is given, ``run_eagerly=True`` is asked for, or the loss
                has no least-squares form (the message lists the supported losses).
        """
        if kwargs.get("optimizer") is not None:
            raise ValueError(
                "`optimizer` must not be given: Levenberg-Marquardt is the optimizer. "
                f"Received: optimizer={kwargs['optimizer']!r}")
        if kwargs.get("run_eagerly"):
            raise ValueError("`run_eagerly` must be False: the LM step is compiled (tf.function "
                             "or jax.jit). Received: run_eagerly=True")
        kwargs.pop("optimizer", None)
        if self.lm_custom_residual is None:
            if loss is None:
                raise ValueError(
                    "`loss` must be given (or pass `residual=` to LMModel). Received: loss=None")
            if _bayes.enabled(self.lm_options):
                _bayes.check_loss(loss, self._output_names(), self.lm_custom_residual)
            self.lm_loss_residual = model_residuals(loss, loss_weights,
                                                    self._output_names())
        self.lm_wants_predictions = metrics is not None or weighted_metrics is not None
        # Keras maps dicts of losses and metrics to outputs through `output_names`; the
        # wrapper answers with the network's, so `metrics={"a": [...]}` and per-output
        # losses (`a_loss`) work as on the network itself.
        self.output_names = getattr(self.network, "output_names", None)
        self.lm_output_losses = self.lm_custom_residual is None and len(
            self._output_names()) > 1
        # TensorFlow: tf.function without XLA (the host-LAPACK Cholesky needs it); JAX: the
        # step must be jitted, else Keras runs it op by op
        kwargs.setdefault("jit_compile", _backends.name() == "jax")
        super().compile(optimizer=None, loss=loss, metrics=metrics, loss_weights=loss_weights,
                        weighted_metrics=weighted_metrics, **kwargs)
        if _backends.name() == "jax":
            # Keras' JAX trainer carries the optimizer's variables in its state: LM has none
            self.optimizer = _NoOptimizer()

    def compile_from_config(self, config):
        """Compiles a loaded wrapper (``keras.models.load_model``, a ``ModelCheckpoint``
        file) as it was compiled when saved: the loss, metrics and loss weights of its
        compile config. A wrapper made with a custom ``residual=`` cannot be compiled again
        (the function is not saved): it is left uncompiled, and ``fit`` asks for
        ``compile``."""
        config = dict(keras.saving.deserialize_keras_object(config) or {})
        config.pop("optimizer", None)
        if config.get("loss") is None and self.lm_custom_residual is None:
            return
        self.compile(**config)

    def _output_names(self):
        names = getattr(self.network, "output_names", None)
        if names:
            return list(names)
        return ["output"]

    def train_step(self, *args):
        """One LM iteration: ``train_step(data)`` on TensorFlow, ``train_step(state, data)``
        -> ``(logs, state)`` on JAX (Keras' stateless JAX trainer)."""
        return _backends.module("step").train_step(self, *args)

    def test_step(self, *args):
        # Keras' own evaluation step; on TensorFlow its logs made reducible on several workers
        # (``keras_distribute.reducible_logs``)
        out = super().test_step(*args)
        if keras.backend.backend() != "tensorflow":
            return out
        from marquardt._backend.tensorflow.keras_distribute import reducible_logs

        return reducible_logs(out)

    def replicas(self) -> int:
        """The number of replicas of a ``tf.distribute`` strategy in sync (1 without one, and
        on JAX)."""
        if keras.backend.backend() != "tensorflow":
            return 1
        return int(self.distribute_strategy.num_replicas_in_sync)

    # ---- the step's static configuration --------------------------------------------------
    def _per_sample(self) -> bool:
        """Whether the step forms J sample by sample (residuals of sample i depend on sample
        i alone) rather than by the full Jacobian of the batch."""
        opts = self.lm_options
        if opts.jacobian == "auto":
            return (self.lm_custom_residual is None
                    and not coupled_layers(self.network, opts.training))
        return opts.jacobian == "per_sample"

    def _check_strategy(self):
        """Refuses a ``tf.distribute`` strategy, or options, that data-parallel LM does not
        support (``docs/distributed.md``)."""
        if keras.backend.backend() != "tensorflow":
            return  # tf.distribute is TensorFlow's; Keras' JAX trainer has no strategy
        from marquardt._backend.tensorflow.keras_distribute import check_strategy

        strategy = self.distribute_strategy
        check_strategy(strategy)
        replicas = int(strategy.num_replicas_in_sync)
        if replicas > 1:
            _validation.check_distributed(
                type(strategy).__name__, replicas, per_sample=self._per_sample(),
                bayes=_bayes.enabled(self.lm_options), kernel=self.lm_options.kernel)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TensorFlow trainer calls this under a tf.distribute strategy before training;
        # its version fails for uneven or multi-worker batches (``keras_distribute``)
        if getattr(self, "_distribute_strategy", None) is None:
            return
        from marquardt._backend.tensorflow.keras_distribute import symbolic_build

        symbolic_build(self, iterator=iterator, data_batch=data_batch)

    def residuals_per_sample(self, batch, weights, frozen=None):
        """k, from the static shape of the residuals of one sample (called while the step is
        traced; ``frozen``: the non-trainable weights' values, by default the variables')."""
        one = keras.tree.map_structure(lambda t: t[:1], batch)
        if frozen is None:
            frozen = [keras.ops.convert_to_tensor(v) for v in self.network.non_trainable_variables]

        def model_fn(inputs):
            return self.network.stateless_call(weights, frozen, inputs,
                                               training=self.lm_options.training)[0]

        if self.lm_custom_residual is not None:
            r = self.lm_custom_residual(model_fn, one["x"], one.get("y"))
        else:
            r = self.lm_loss_residual[0](one.get("y"), model_fn(one["x"]), one.get("sw"))
        shape = tuple(r.shape)
        k = 1 if len(shape) < 2 else (None if None in shape[1:] else int(np.prod(shape[1:])))
        if k is None and getattr(self, "_lm_k", None) is not None:
            # a later fit with another batch size: Keras retraces the step with its shapes
            # relaxed to None (``reduce_retracing``); the front door measured k on the data
            k = self._lm_k
        if k is None:
            hint = ""
            replicas = self.replicas()
            if replicas > 1:
                hint = (" (under tf.distribute, a batch that does not split evenly over the "
                        "replicas loses its static shapes: use a multiple of "
                        f"{replicas} samples per batch)")
            raise ValueError(
                f"The residuals of one sample must have a static size{hint}. Received: "
                f"residuals of shape {r.shape}")
        return int(k)

    # ---- fit: Keras' own loop, with checks, the batch policy and stopping -------------------
    def fit(self, x=None, y=None, batch_size="auto", epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, **kwargs):
        """Keras ``fit``; ``batch_size`` chooses full batch or mini-batch LM.

        Args:
            batch_size: ``"auto"`` (default; ``marquardt.keras._batching``): array input with
                at least 8 batches of max(2·⌈P/k⌉, ⌈1000/k⌉) samples (P weights, k residuals per sample)
                trains in such mini-batches until an epoch does not lower the full-data loss
                (or every batch hits the damping limit), then full batch; anything else, and
                MATLAB's ``trainlm``/``trainbr`` (damping ``"trainlm"``), trains full batch.
                ``"full"`` or ``None``: full batch, the classic LM setting. A number: mini-batch
                LM of that many samples per batch (raised to at least one residual per
                weight). Other arguments as in ``keras.Model.fit``.

        Returns:
            the ``keras.callbacks.History``, with ``history.stop_reason`` saying why training
            stopped (also ``self.stop_reason``) and, for array input,
            ``history.history["batch_size"]`` (the samples per batch of each epoch).

        Raises:
            ValueError: a ``tf.distribute`` strategy other than ``MirroredStrategy`` or
                ``MultiWorkerMirroredStrategy`` (or options they cannot split, see
                ``docs/distributed.md``), no trainable weights, non-finite
                ``x``/``y``/``sample_weight``, targets that do not match the outputs, a non-finite starting loss, a model
                too large for dense LM (the message says how much memory it needs), a
                ``batch_size`` that is not ``"auto"``, ``"full"``, None or a positive integer.
        """
        if not self.compiled:
            raise ValueError("The model must be compiled before `fit`: call "
                             "`compile(loss=...)` first. Received: an uncompiled LMModel")
        if self.lm_loss_residual is None and self.lm_custom_residual is None:
            # Keras marks a loaded wrapper compiled even where ``compile_from_config`` could
            # not compile it: one saved with a custom residual, which is not saved with it
            raise ValueError(
                "The model must be compiled with a loss, or wrapped with its `residual=`, "
                "before `fit`: a loaded LMModel does not keep a custom residual function. "
                "Wrap `model.network` again, `LMModel(model.network, residual=...)`, or call "
                "`compile(loss=...)`. Received: a loaded LMModel without a loss or residual")
        batch_size = check_batch_size(batch_size)
        _validation.check_callbacks(callbacks)
        self._check_strategy()
        self._lm_k, self._lm_probe_rows = check_inputs(self, x, y, sample_weight)
        _validation.check_validation_data(validation_data)
        is_dataset = hasattr(x, "element_spec")
        leaves = keras.tree.flatten(x) if x is not None else []
        # arrays: their sample count; a dataset, generator or PyDataset batches itself
        n = (int(leaves[0].shape[0]) if leaves and hasattr(leaves[0], "shape")
             and not is_dataset else None)
        given = batch_size if isinstance(batch_size, int) else None
        if _bayes.enabled(self.lm_options):
            _bayes.check_full_batch(x, n, given)
        first, policy = [EpochSums()], None
        train_rows = None
        if n is not None:
            train_rows = n if not validation_split or validation_data is not None else int(
                np.floor(n * (1.0 - validation_split)))
        plan = plan_batches(batch_size, rows=train_rows, k=self._lm_k,
                            p=self._lm_weight_count(), full_only=self._full_batch_only())
        batch_size = given if n is None else (plan.batch_size or n)  # None: full batch
        if n is not None and self._lm_k is not None:
            # mini-batches of fewer residuals than weights diverge (``_minibatch``)
            batch_size = safe_batch_size(int(batch_size), train_rows, self._lm_k,
                                         self._lm_weight_count())
            if batch_size < train_rows:
                head = lambda t: None if t is None else keras.tree.map_structure(  # noqa: E731
                    lambda a: a[:train_rows], t)
                first.append(FullDataLoss(head(x), head(y), head(sample_weight),
                                          self.lm_loss_residual))
            _validation.check_even_split(min(batch_size, train_rows), self.replicas())
        elif is_dataset and self._lm_k is not None and self._lm_probe_rows is not None:
            warn_small_batches(self._lm_probe_rows, self._lm_k, self._lm_weight_count())
        stopper = LMStopping(self.lm_options)
        if n is not None:
            restores = any(isinstance(cb, keras.callbacks.EarlyStopping)
                           and cb.restore_best_weights for cb in callbacks or ())
            policy = BatchPolicy(int(batch_size), train_rows,
                                 auto=plan.auto and batch_size < train_rows,
                                 restore=not restores)
            stopper.policy = policy
        if is_dataset:
            shuffle = False  # Keras ignores it for datasets, with a warning
        all_callbacks = first + list(callbacks or []) + [stopper] + ([policy] if policy else [])
        warn_about_layers(self.network, self.lm_options.training)
        self.stop_reason = None
        data = dict(x=x, y=y, sample_weight=sample_weight, shuffle=shuffle,
                    class_weight=class_weight, validation_split=validation_split,
                    validation_data=validation_data)
        auto = policy is not None and policy.auto
        phase = phase_inputs(data, batch_size, n, kwargs, drop_remainder=auto)
        if auto:
            all_callbacks = PhasedCallbacks(
                all_callbacks, policy, add_history=True, add_progbar=verbose != 0,
                verbose=verbose, epochs=epochs, model=self,
                steps=phase.get("steps_per_epoch") or math.ceil(train_rows / batch_size))
        try:
            with _quiet_fitting():
                history = super().fit(epochs=epochs, verbose=verbose, callbacks=all_callbacks,
                                      initial_epoch=initial_epoch, **phase)
                if policy is not None and policy.continues:
                    # batch_size="auto": the mini-batch epochs stopped improving; full batch
                    phase = phase_inputs(data, n, n, kwargs)
                    all_callbacks.set_params({**all_callbacks.params, "steps": 1})
                    history = super().fit(epochs=epochs, verbose=verbose,
                                          callbacks=all_callbacks,
                                          initial_epoch=policy.switch_epoch + 1, **phase)
        except KeyboardInterrupt:
            # Keras lets the interrupt through without `on_train_end`; first keep the weights
            # the user asked for (EarlyStopping's best), then let it reach the caller.
            restored = restore_best_weights(self, callbacks)
            if restored is None and policy is not None and isinstance(first[-1], FullDataLoss):
                restored = policy.restore_after_interrupt(first[-1].full_loss)
            self._record_stop(self.history, stopper, callbacks, initial_epoch, epochs,
                              interrupted=restored or "last", policy=policy)
            raise
        self._record_stop(history, stopper, callbacks, initial_epoch, epochs, policy=policy)
        return history

    def _full_batch_only(self) -> str:
        """Why the options train full batch under ``batch_size="auto"`` ("" if they need not)."""
        if isinstance(self.lm_options.damping, TrainLM):
            return "damping 'trainlm' (MATLAB's trainlm and trainbr train full batch)"
        if _bayes.enabled(self.lm_options):
            return "Bayesian regularisation needs the whole training set"
        if self.replicas() > 1:
            return "several replicas"
        return ""

    def _record_stop(self, history, stopper, callbacks, initial_epoch, epochs,
                     interrupted=None, policy=None):
        done = len(history.epoch) + initial_epoch if history is not None else 0
        self.stop_reason = final_reason(stopper, callbacks, done, epochs, interrupted)
        if history is not None:
            history.stop_reason = self.stop_reason
            history.lm_status = stopper.status
            history.history["lm_status"] = stopper.codes[:len(history.epoch)]
            if policy is not None:
                history.history["batch_size"] = policy.sizes[:len(history.epoch)]
        log_reason(self.stop_reason)

    def _lm_weight_count(self):
        return int(sum(np.prod(v.shape) for v in self.network.trainable_variables))

    def _loss_names(self):
        loss = self.loss
        names = self._output_names()
        if isinstance(loss, dict):
            loss = [loss[n] for n in names]
        if not isinstance(loss, (list, tuple)):
            loss = [loss] * len(names)
        return [residuals_for_loss(item).name for item in loss]

    # ---- serialisation ----------------------------------------------------------------------
    def get_config(self):
        return {
            "model": keras.saving.serialize_keras_object(self.network),
            "options": options_to_config(self.lm_options),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        net = keras.saving.deserialize_keras_object(config["model"],
                                                    custom_objects=custom_objects)
        return cls(net, options=options_from_config(config["options"]), name=config.get("name"))


def _quiet_fitting():
    """``quiet_log.keras_fitting()`` on the TensorFlow backend (TensorFlow's retracing warning
    about Keras' steps, traced once per network, dropped during our fit); else nothing."""
    if _backends.name() != "tensorflow":
        import contextlib
        return contextlib.nullcontext()
    from marquardt._backend.tensorflow import quiet_log
    return quiet_log.keras_fitting()
