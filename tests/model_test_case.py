"""The checks every zoo model runs: subclass `ModelTests` and set
`model_class` and `init_kwargs` (small networks keep the suite fast)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

BATCH = 32


class ModelTests:
    model_class = None
    init_kwargs = {}
    #: (constructor overrides, the argument the error must name)
    bad_constructor_args = [({"latent_dim": 0}, "latent_dim"), ({"likelihood": "poisson"}, "likelihood")]

    def make_model(self, **overrides):
        return self.model_class(**{"seed": 7, **self.init_kwargs, **overrides})

    @pytest.fixture
    def x(self, mnist_binary):
        return mnist_binary[:BATCH]

    # ---------------------------------------------------------------- shapes
    def test_encode_decode_sample_shapes(self, x):
        model = self.make_model()
        assert model.encode(x).batch_shape == [BATCH]
        z = model.latent(x)
        assert z.shape == (BATCH, *model.latent_shape)
        likelihood = model.decode(z)
        assert likelihood.batch_shape == [BATCH]
        assert tuple(likelihood.event_shape) == model.data_shape
        if model.prior is None:
            with pytest.raises(ValueError, match="prior"):
                model.sample(5, seed=3)
        else:
            samples = model.sample(5, seed=3)
            assert samples.shape == (5, *model.data_shape)
            np.testing.assert_array_equal(samples, model.sample(5, seed=3))
            assert not np.array_equal(samples, model.sample(5, seed=4))
        recon = model.reconstruct(x)
        assert recon.shape == x.shape
        np.testing.assert_array_equal(recon, model.reconstruct(x))
        np.testing.assert_array_equal(recon, model.predict(x, verbose=0))

    # ---------------------------------------------------------- fit/evaluate
    def test_fit_and_evaluate_report_the_objective(self, x):
        model = self.make_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x, batch_size=BATCH, epochs=2, verbose=0).history
        assert set(model.metric_names) <= set(history)
        for name, values in history.items():
            assert len(values) == 2 and np.all(np.isfinite(values)), name
        logs = model.evaluate(x, batch_size=8, return_dict=True, verbose=0)
        assert set(logs) == set(history)
        assert model.evaluate(x, batch_size=8, return_dict=True, verbose=0) == logs  # repeatable
        assert logs["loss"] != 0.0  # not the 0.0 Keras substitutes for an uncompiled loss
        terms = model.compute_terms(x)
        assert logs["reconstruction_loss"] == pytest.approx(float(terms["reconstruction_loss"]), rel=0.05)
        if "elbo" in logs:
            assert logs["elbo"] == pytest.approx(-(logs["reconstruction_loss"] + logs["kl"]), rel=1e-5)

    def test_validation_data_in_fit(self, x):
        model = self.make_model()
        model.compile()
        history = model.fit(x, validation_data=(x[:8],), batch_size=16, epochs=1, verbose=0).history
        assert {f"val_{n}" for n in model.metric_names} <= set(history)

    # ------------------------------------------------------------ round trip
    def test_keras_file_round_trip(self, x, tmp_path):
        model = self.make_model()
        model.compile()
        model.fit(x, batch_size=BATCH, epochs=1, verbose=0)
        path = tmp_path / "model.keras"
        model.save(path)
        restored = keras.models.load_model(path, safe_mode=True)
        assert type(restored) is type(model)
        assert restored.get_config() == model.get_config()
        np.testing.assert_array_equal(restored.latent(x), model.latent(x))
        np.testing.assert_array_equal(restored.reconstruct(x), model.reconstruct(x))
        # Optimizer and noise state are restored too: both continue identically.
        assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 1
        for m in (model, restored):
            m.fit(x, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        for a, b in zip(model.weights, restored.weights):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)

    # ------------------------------------------------------------ replicas
    def test_two_replicas_match_one_device(self, x, two_replicas):
        data = np.concatenate([x, x[::-1]])  # 2 steps of 32 examples

        def train(strategy):
            with strategy.scope():
                keras.utils.set_random_seed(11)
                # float32 pinned: the check is exact replica arithmetic, and bfloat16
                # (ConvVAE's default on CPUs with the instructions) rounds differently
                # when the batch is split.
                model = self.make_model(dtype="float32")
                # XLA's stateless RNG differs from the TF kernel's: same setting on both sides.
                model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
            ds = tf.data.Dataset.from_tensor_slices(data).batch(BATCH, drop_remainder=True)
            with warnings.catch_warnings():
                # A dataset shuffles by itself: `fit` passes Keras no `shuffle=True` to warn about.
                warnings.simplefilter("error", UserWarning)
                history = model.fit(ds, epochs=1, verbose=0).history
            return model, history

        single, h1 = train(tf.distribute.get_strategy())
        mirrored, h2 = train(two_replicas)
        assert mirrored.distribute_strategy.num_replicas_in_sync == 2
        for a, b in zip(single.weights, mirrored.weights):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path)
        for name in h1:
            # atol: a term that is a near-cancellation (a total correlation of ~1e-4) differs in float32 rounding.
            np.testing.assert_allclose(h1[name], h2[name], rtol=1e-5, atol=1e-7, err_msg=name)

    # ------------------------------------------------------------ bad input
    def test_bad_inputs_raise_clear_errors(self, x):
        model = self.make_model()
        model.compile()
        cases = [
            (x[..., 0], "rank"),                                  # missing channel axis
            (np.concatenate([x, x], -1), "channels"),             # 2 channels
            ((x * 255).astype("uint8"), "dtype"),                 # integer images
            (np.array(["a"]), "numeric"),                         # strings
            (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x).astype("float32"), "finite"),
        ]
        if model.likelihood.support != "the real numbers":
            # Named by its class, not by a numbered Keras layer name.
            cases.append((x + 2.0, f"support .* of the {type(model.likelihood).__name__} likelihood\\. Received"))
        for bad, words in cases:
            for call in (model.encode, lambda d: model.fit(d, epochs=1, verbose=0)):
                with pytest.raises(ValueError, match="x.*" + words if words != "numeric" else "numeric"):
                    call(bad)
        *lead, last = model.latent_shape
        with pytest.raises(ValueError, match=r"`z` must have shape \(None, "):
            model.decode(np.zeros((2, *lead, last + 1), "float32"))
        bad_ds = tf.data.Dataset.from_tensor_slices(x[..., 0]).batch(4)
        with pytest.raises(ValueError, match="`x` must have rank 4"):
            model.fit(bad_ds, epochs=1, verbose=0)
        batches = tf.data.Dataset.from_tensor_slices(x).batch(4)
        for call in (model.encode, model.reconstruct):
            with pytest.raises(ValueError, match=r"`x` must be one batch .*Received: x=<_BatchDataset"):
                call(batches)
        with pytest.raises(ValueError, match=r"`z` must be one batch .*Received: z=<_BatchDataset"):
            model.decode(tf.data.Dataset.from_tensor_slices(np.zeros((4, *model.latent_shape), "float32")).batch(2))
        # Empty inputs: Keras would run no step and return as if it had trained.
        weights = [w.numpy() for w in model.trainable_weights]
        for call in (lambda d: model.fit(d, epochs=1, verbose=0), model.train_on_batch,
                     lambda d: model.evaluate(d, verbose=0), lambda d: model.predict(d, verbose=0)):
            with pytest.raises(ValueError, match=r"`x` must hold at least one example. Received: x.shape=\(0, 28"):
                call(x[:0])
            with pytest.raises(ValueError, match=r"`x` must yield at least one batch. Received: an empty tf.data"):
                call(tf.data.Dataset.from_tensor_slices(x).batch(64, drop_remainder=True))
        with pytest.raises(ValueError, match=r"`validation_data` must hold at least one example"):
            model.fit(x, validation_data=(x[:0],), epochs=1, verbose=0)
        assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights, model.trainable_weights))
        for kwargs, arg in self.bad_constructor_args:
            with pytest.raises(ValueError, match=f"`{arg}` must .*Received: {arg}="):
                self.make_model(**kwargs)
