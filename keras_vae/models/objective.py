"""The training contract every model of the package follows.

`ObjectiveModel` is a `keras.Model` trained on a built-in objective: a
subclass provides `compute_terms(x, training)`, a dict of named batch-mean
scalars holding `"loss"` (what gradients are taken of) and one entry per
metric tracker, and `_check_data(name, data)`, its input checks. This class
turns that into `train_step` / `test_step` for plain `model.fit` /
`evaluate` under any `tf.distribute` strategy:

- the loss is divided by `num_replicas_in_sync` before the gradients are
  taken (the optimizer sums gradients across replicas) and passed through
  `optimizer.scale_loss` (mixed precision); metrics are unscaled;
- `metrics` holds only the model's own trackers, so `loss` is the objective
  and not the 0.0 Keras reports for an uncompiled loss;
- `compile` needs no loss and refuses one, picks measured `jit_compile` /
  `steps_per_execution` defaults, and `compile_from_config` makes a `.keras`
  file reload compiled;
- an auxiliary network with its own loss and optimizer (FactorVAE's
  discriminator, or an adversary of any GAN-style term) is one entry of
  `auxiliary_optimizers()`: `compile` takes its optimizer by that name, one
  step updates it from its own term of `compute_terms` alongside the model,
  with the same replica scaling and loss scaling, and a `.keras` file keeps
  both optimizers' state.

`BaseVAE` (the ELBO) and `PixelCNN` (a code-map density) share it.
"""

import inspect
import warnings

import keras
import tensorflow as tf

from keras_vae import distribute, validation

#: Index of `shuffle` among `keras.Model.fit`'s positional arguments after `x, y`.
_FIT_SHUFFLE_POSITION = 6


class ObjectiveModel(keras.Model):
    """A `keras.Model` whose `fit` minimises `compute_terms(x)["loss"]`."""

    #: Names of the metrics `fit` / `evaluate` report, in order.
    metric_names = ("loss",)
    #: `jit_compile` used for `compile(jit_compile="auto")` on machines without
    #: an accelerator (Keras itself turns XLA off there); set per model from
    #: `scripts/benchmark.py`.
    default_jit_compile = False
    #: dtype policy the model is built with when given no `dtype` on a
    #: machine where `keras_vae.precision.bfloat16_pays()` (measured per
    #: model with scripts/precision_study.py); `None`: Keras' global policy.
    default_dtype = None
    #: `steps_per_execution` used when `compile` is not given one: Keras' per
    #: step overhead in `fit` (converting the logs of every batch) costs ~7%
    #: of a small MLP's step on CPU; 8 steps per call amortise it
    #: (scripts/benchmark.py). Batch-level callbacks then fire every 8 steps.
    #: Keras runs whole calls (3 `steps_per_epoch` at 8 per call train 8
    #: steps), so a `steps_per_epoch`, `validation_steps` or `steps` that 8
    #: does not divide runs with the largest count that does.
    default_steps_per_execution = 8

    def compute_terms(self, x, training=False):
        """Named batch-mean scalars: `"loss"` and one per tracker in `metrics`."""
        raise NotImplementedError

    def _check_data(self, name, data):
        """Raises a `ValueError` naming `name` if `data` cannot be a batch of inputs."""

    def _trained_variables(self):
        """The variables `train_step` updates."""
        return self.trainable_variables

    def _loss_groups(self):
        """`((term, variables), ...)`: each group of trained variables takes
        its gradient from the named term of `compute_terms` (one optimizer
        step applies them all). Default: every trained variable from `"loss"`."""
        return (("loss", self._trained_variables()),)

    def auxiliary_optimizers(self):
        """`{name: (term, variables, default)}`: networks trained beside the
        model by their own optimizer, which `compile` takes as the keyword
        argument `name` (`default`, a Keras optimizer config or identifier,
        when not given), each step minimising the term `term` of
        `compute_terms` over `variables` only. `_trained_variables` must not
        hold them. Default: none."""
        return {}

    def _optimizer_groups(self):
        """`[(optimizer, ((term, variables), ...)), ...]`: the main optimizer
        with `_loss_groups`, then each auxiliary optimizer with its term."""
        groups = [(self.optimizer, self._loss_groups())]
        for name, (term, variables, _) in self.auxiliary_optimizers().items():
            groups.append((getattr(self, name), ((term, variables),)))
        return groups

    # ------------------------------------------------------------------ #
    # Keras training contract
    # ------------------------------------------------------------------ #
    @property
    def metrics(self):
        # Only our trackers: Keras' compiled-loss tracker is also named "loss"
        # and would report 0.0 instead of the objective.
        return list(self._trackers)

    def _batch_x(self, data):
        x, _, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} does not support `sample_weight`. "
                "Received: a dataset yielding (x, y, sample_weight)"
            )
        return x

    def _make_trackers(self):
        """One batch-size-weighted `Mean` per name in `metric_names`."""
        return [keras.metrics.Mean(name=n) for n in self.metric_names]

    def _report(self, terms, x):
        batch = tf.cast(tf.shape(x)[0], tf.float32)
        for tracker in self.metrics:
            if isinstance(tracker, keras.metrics.Mean):
                tracker.update_state(terms[tracker.name], sample_weight=batch)
            else:
                tracker.update_state(terms[tracker.name])
        logs = {}
        for metric in self.metrics:
            result = metric.result()
            logs.update(result if isinstance(result, dict) else {metric.name: result})
        if distribute.is_multi_worker():
            # Under several workers Keras reduces every log with
            # `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar
            # ("Invalid reduction dimension 0 for input with 0 dimensions",
            # tensorflow/tensorflow#72388). Shape [1] reduces to the scalar mean.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def train_step(self, data):
        x = self._batch_x(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        optimizer_groups = self._optimizer_groups()
        with tf.GradientTape(persistent=sum(len(g) for _, g in optimizer_groups) > 1) as tape:
            terms = self.compute_terms(x, training=True)
            # Each optimizer sums replica gradients: scale the per-replica mean.
            losses = [[optimizer.scale_loss(terms[name] / replicas) for name, _ in groups]
                      for optimizer, groups in optimizer_groups]
        # Every gradient is taken before any optimizer moves a variable.
        updates = []
        for (optimizer, groups), group_losses in zip(optimizer_groups, losses):
            gradients_and_variables = []
            for loss, (_, variables) in zip(group_losses, groups):
                gradients_and_variables.extend(zip(tape.gradient(loss, variables), variables))
            updates.append((optimizer, gradients_and_variables))
        for optimizer, gradients_and_variables in updates:
            optimizer.apply_gradients(gradients_and_variables)
        return self._report(terms, x)

    def test_step(self, data):
        x = self._batch_x(data)
        return self._report(self.compute_terms(x, training=False), x)

    def compile(self, optimizer="adam", jit_compile="auto", steps_per_execution=None, **kwargs):
        """`keras.Model.compile`; no `loss` is needed (the objective is built in).

        `jit_compile="auto"` uses the model's measured `default_jit_compile` on
        machines without an accelerator and Keras' own choice elsewhere.
        `steps_per_execution=None` uses `default_steps_per_execution`.
        """
        for arg in ("loss", "metrics", "weighted_metrics"):
            if kwargs.get(arg) is not None:
                raise ValueError(
                    f"{type(self).__name__} trains on its own objective and reports "
                    f"{self.metric_names}; do not pass a compiled `{arg}`. "
                    f"Received: {arg}={kwargs[arg]!r}"
                )
        auxiliary = {}
        for name, (_, _, default) in self.auxiliary_optimizers().items():
            given = kwargs.pop(name, None)
            auxiliary[name] = default if given is None else given
        explicit_jit = jit_compile is True
        if jit_compile == "auto" and not tf.config.list_physical_devices("GPU"):
            jit_compile = self.default_jit_compile and not kwargs.get("run_eagerly", False)
        explicit_steps = steps_per_execution not in (None, 1)
        given_steps = steps_per_execution
        if steps_per_execution is None:
            steps_per_execution = self.default_steps_per_execution
        if self.distribute_strategy.num_replicas_in_sync > 1:
            # Keras compiles the whole `strategy.run` call as one XLA cluster,
            # which cannot reach variables mirrored on other devices; and its
            # multi-step loop fails under MirroredStrategy ("You must feed a
            # value for placeholder tensor", keras-team/keras#19246).
            for explicit, what in ((explicit_jit, "jit_compile=True"), (explicit_steps, "steps_per_execution > 1")):
                if explicit:
                    warnings.warn(
                        f"{what} is not supported with several replicas in sync; "
                        "using jit_compile=False, steps_per_execution=1.",
                        stacklevel=2,
                    )
            jit_compile, steps_per_execution = False, 1
        self._automatic_steps_per_execution = given_steps is None
        self._compiled_steps_per_execution = steps_per_execution
        # In the model's own strategy scope: an optimizer given by name is
        # created there even when `compile` is called outside it.
        with self.distribute_strategy.scope():
            super().compile(
                optimizer=optimizer,
                jit_compile=jit_compile,
                steps_per_execution=steps_per_execution,
                **kwargs,
            )
            # A `.keras` file reloads with the automatic choice when it was one.
            self._compile_config.config["steps_per_execution"] = given_steps
            for name, given in auxiliary.items():
                optimizer = keras.optimizers.get(given)
                if self.dtype_policy.name == "mixed_float16" and not isinstance(
                        optimizer, keras.optimizers.LossScaleOptimizer):
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # as Keras does for the main one
                setattr(self, name, optimizer)
                # Saved with the compile config: a `.keras` file reloads it (its state is saved as an attribute).
                self._compile_config.config[name] = optimizer
        # `fit` ends with `optimizer.finalize_variable_values(model.trainable_weights)`,
        # which under `use_ema=True` assigns the averages to those variables
        # position by position; the optimizer averages `_trained_variables()`.
        finalize = type(self.optimizer).finalize_variable_values.__get__(self.optimizer)
        self.optimizer.finalize_variable_values = lambda var_list: finalize(self._trained_variables())

    def compile_from_config(self, config):
        # Keras skips this for an overridden `compile`; restore the optimizer
        # (and its slots, which `load_model` fills next) as Keras itself would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self._build_optimizer()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras builds the model from a batch it pulls from a
        # fresh iterator of the training data (keras/src/backend/tensorflow/
        # trainer.py). That spends one pass of a reshuffling pipeline, so the
        # first epoch would differ from the same run on one device. These
        # models are built at construction and compile no loss or metrics:
        # no batch is needed.
        if all(layer.built for layer in self._flatten_layers()):
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _build_optimizer(self):
        # Slots only for what `train_step` updates (Keras would build them for
        # every trainable variable).
        if getattr(self, "optimizer", None) is None:
            return
        with self.distribute_strategy.scope():
            if not self.optimizer.built:
                self.optimizer.build(self._trained_variables())
            for name, (_, variables, _) in self.auxiliary_optimizers().items():
                optimizer = getattr(self, name, None)
                if optimizer is not None and not optimizer.built:
                    optimizer.build(variables)

    # ------------------------------------------------------------------ #
    # Input checks, run before any graph is built
    # ------------------------------------------------------------------ #
    def _check_inputs(self, name, data):
        validation.check_not_empty(name, data)
        self._check_data(name, data)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after the input checks. For a `tf.data.Dataset`
        `shuffle` defaults to False: the pipeline shuffles (or not) by itself,
        as `keras_vae.data.load_dataset` does, and Keras ignores the flag for
        a dataset (Keras 3.15 warns about its default `shuffle=True`)."""
        self._check_inputs("x", x)
        if isinstance(x, tf.data.Dataset) and len(args) <= _FIT_SHUFFLE_POSITION:
            kwargs.setdefault("shuffle", False)
        if kwargs.get("sample_weight") is not None:
            raise ValueError(
                f"{type(self).__name__} does not support `sample_weight`. "
                f"Received: sample_weight of type {type(kwargs['sample_weight']).__name__}"
            )
        if kwargs.get("validation_data") is not None:
            self._check_inputs("validation_data", kwargs["validation_data"])
        self._build_optimizer()
        given = inspect.signature(keras.Model.fit).bind_partial(self, x, y, *args, **kwargs).arguments
        self._match_steps_per_execution(
            {name: given.get(name) for name in ("steps_per_epoch", "validation_steps")}, restore=True)
        return super().fit(x, y, *args, **kwargs)

    def _match_steps_per_execution(self, counts, restore):
        """Sets `steps_per_execution` to the largest divisor of the step
        `counts` (None: not given) up to the compiled one, which `restore`
        brings back when they allow it; otherwise leaves it where it divides
        them (as inside `fit`, whose validation runs `evaluate`)."""
        if not self.compiled:
            return
        given = {name: count for name, count in counts.items() if count is not None}
        current = self.steps_per_execution
        if not restore and all(count % current == 0 for count in given.values()):
            return
        base = getattr(self, "_compiled_steps_per_execution", current)
        uneven = {name: count for name, count in given.items() if count % base}
        if uneven and not getattr(self, "_automatic_steps_per_execution", False):
            name, count = next(iter(uneven.items()))
            raise ValueError(
                f"`{name}` must be a multiple of the compiled `steps_per_execution` ({base}): Keras runs "
                f"{base} steps per call, so {count} would run {-(-count // base) * base}. Received: {name}={count}"
            )
        target = max(d for d in range(1, base + 1) if all(count % d == 0 for count in given.values()))
        if target != current:
            self.steps_per_execution = target
            self.train_function = self.test_function = None  # traced for the old count

    def train_on_batch(self, x, *args, **kwargs):
        self._check_inputs("x", x)
        self._build_optimizer()
        return super().train_on_batch(x, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        # Also runs for `fit`'s validation_data.
        self._check_inputs("x", x)
        given = inspect.signature(keras.Model.evaluate).bind_partial(self, x, y, *args, **kwargs).arguments
        self._match_steps_per_execution({"steps": given.get("steps")}, restore=False)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_inputs("x", x)
        return super().predict(x, *args, **kwargs)
