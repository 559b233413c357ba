import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from model_test_case import BATCH, ModelTests

from keras_vae import VQVAE


class TestVQVAE(ModelTests):
    model_class = VQVAE
    init_kwargs = {"num_codes": 16, "code_dim": 4, "filters": (8, 16)}
    bad_constructor_args = [({"code_dim": 0}, "code_dim"), ({"num_codes": -1}, "num_codes"),
                            ({"codebook_update": "kmeans"}, "codebook_update"), ({"likelihood": "poisson"}, "likelihood")]


def test_indices_round_trip_and_posterior(mnist_binary):
    model = VQVAE(num_codes=16, code_dim=4, filters=(8, 16), seed=0)
    x = mnist_binary[:4]
    indices = model.encode_indices(x)
    assert indices.shape == (4, 7, 7) and indices.dtype == tf.int32
    posterior = model.encode(x)
    assert posterior.event_shape == [7, 7]
    np.testing.assert_array_equal(posterior.mode(), indices)
    np.testing.assert_allclose(model.decode_indices(indices.numpy()).mean(), model.reconstruct(x), atol=1e-6)


def test_objective_and_codebook_metrics(mnist_binary):
    model = VQVAE(num_codes=16, code_dim=4, filters=(8, 16), seed=0)
    terms = {k: np.asarray(v) for k, v in model.compute_terms(mnist_binary[:8]).items()}
    assert float(terms["loss"]) == pytest.approx(
        float(terms["reconstruction_loss"] + terms["codebook_loss"] + 0.25 * terms["commitment_loss"]), rel=1e-5
    )
    assert terms["codebook"].sum() == 8 * 7 * 7  # one code per position
    model.compile()
    logs = model.evaluate(mnist_binary[:64], batch_size=16, return_dict=True, verbose=0)
    assert 1.0 <= logs["perplexity"] <= 16.0 and 0.0 < logs["codebook_usage"] <= 1.0


def test_ema_codebook_under_two_replicas_matches_one_device(mnist_binary, two_replicas):
    data = mnist_binary[: 2 * BATCH]

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(5)
            model = VQVAE(num_codes=16, code_dim=4, filters=(8, 16), codebook_update="ema", seed=1)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
        model.fit(tf.data.Dataset.from_tensor_slices(data).batch(BATCH, drop_remainder=True), verbose=0)
        return model

    single, mirrored = train(tf.distribute.get_strategy()), train(two_replicas)
    assert np.abs(single.quantizer.ema_counts.numpy()).sum() > 0
    for a, b in zip(single.weights, mirrored.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path)


def test_bad_code_maps_are_rejected():
    model = VQVAE(num_codes=16, code_dim=4, filters=(8, 16), seed=0)
    with pytest.raises(ValueError, match=r"`indices` must lie in \[0, 16\). Received: indices with values in \[16, 16\]"):
        model.decode_indices(np.full((1, 7, 7), 16))
    with pytest.raises(ValueError, match=r"`indices` must have shape \(None, 7, 7\). Received: indices.shape=\(1, 7, 6\)"):
        model.decode_indices(np.zeros((1, 7, 6), "int32"))
    with pytest.raises(ValueError, match="`indices` must hold integers. Received: indices.dtype=float32"):
        model.decode_indices(np.zeros((1, 7, 7), "float32"))


SMALL = {"num_codes": 16, "code_dim": 4, "filters": (8, 16), "prior_filters": 8, "prior_layers": 3}


def test_sample_without_a_trained_prior_says_how_to_train_one():
    model = VQVAE(**SMALL, seed=0)
    assert model.prior is None
    with pytest.raises(ValueError, match=r"prior has not been trained yet.*`model.fit_prior\(images, epochs=...\)`"
                                         r".*`keras-vae train-prior MODEL.keras`"):
        model.sample(4)


def test_fit_trains_the_autoencoder_and_fit_prior_only_the_prior(mnist_binary, tmp_path):
    x, labels = mnist_binary[:64], np.arange(64) % 10
    model = VQVAE(**SMALL, seed=0)
    model.compile()
    prior_start = [w.numpy() for w in model.pixelcnn.weights]
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    for before, after in zip(prior_start, model.pixelcnn.weights):
        np.testing.assert_array_equal(before, after)
    autoencoder = [w.numpy() for w in model.weights if not w.path.startswith("pixelcnn")]

    model.pixelcnn.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit_prior(x, validation_data=mnist_binary[64:96], epochs=2, batch_size=32, verbose=0).history
    assert set(history) == {"loss", "val_loss"} and np.isfinite(history["val_loss"]).all()
    assert model.pixelcnn.trained_steps == 4
    for before, after in zip(autoencoder, [w for w in model.weights if not w.path.startswith("pixelcnn")]):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(
        model.code_maps(tf.data.Dataset.from_tensor_slices((x, labels)).batch(10)), model.encode_indices(x)
    )

    assert isinstance(model.prior, tfp.distributions.Autoregressive)
    np.testing.assert_array_equal(model.prior.event_shape_tensor(), [7, 7])
    samples = model.sample(6, seed=1)
    assert samples.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(samples, model.sample(6, seed=1))
    assert not np.array_equal(samples, model.sample(6, seed=2))
    model.save(tmp_path / "vq.keras")
    restored = keras.models.load_model(tmp_path / "vq.keras")
    assert restored.pixelcnn.trained_steps == 4
    np.testing.assert_array_equal(restored.sample(6, seed=1), samples)
    # Both optimizers come back, so training either part resumes where it stopped.
    for part in (lambda m: m, lambda m: m.pixelcnn):
        saved, loaded = part(model).optimizer, part(restored).optimizer
        assert loaded.learning_rate.numpy() == pytest.approx(saved.learning_rate.numpy())
        assert len(loaded.variables) == len(saved.variables)
        for a, b in zip(saved.variables, loaded.variables):
            np.testing.assert_array_equal(a, b, err_msg=a.path)
    assert float(restored.pixelcnn.optimizer.learning_rate.numpy()) == pytest.approx(2e-3)


def test_fit_prior_under_two_replicas(mnist_binary, two_replicas):
    with two_replicas.scope():
        model = VQVAE(**SMALL, seed=0)
    # Compiled outside the scope, as users do: the optimizer still lands in it.
    model.fit_prior(mnist_binary[:64], epochs=1, batch_size=32, verbose=0)
    assert model.pixelcnn.trained_steps == 2
    assert model.pixelcnn.optimizer.iterations.numpy() == 2
    assert model.sample(2, seed=0).shape == (2, 28, 28, 1)


@pytest.mark.parametrize("name, value", [
    ("prior_kernel_size", 4), ("prior_filters", 0), ("prior_layers", 0), ("prior_dropout", 1.0),
])
def test_prior_arguments_are_named_as_vq_vae_names_them(name, value):
    with pytest.raises(ValueError, match=rf"`{name}` must .*Received: {name}={value}$"):
        VQVAE(**{**SMALL, name: value}, seed=0)


def test_code_maps_reject_bad_input():
    model = VQVAE(**SMALL, seed=0)
    images = np.zeros((4, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="`x` must be a finite dataset"):
        model.code_maps(tf.data.Dataset.from_tensor_slices(images).batch(2).repeat())
    assert model.code_maps((images, np.arange(4))).shape == (4, 7, 7)
    with pytest.raises(ValueError, match=r"`x` must have shape \(None, 28, 28, 1\)"):
        model.code_maps(np.zeros((4, 28, 28, 3), "float32"))


def test_sample_checks_its_arguments():
    model = VQVAE(**SMALL, seed=0)
    model.pixelcnn._steps.assign(1)  # sampling needs no trained weights, only a prior marked trained
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0. Received: temperature=-1"):
        model.sample(2, temperature=-1)
    with pytest.raises(ValueError, match="`num_samples` must be a positive integer. Received: num_samples=0"):
        model.sample(0)


def test_train_on_batch_builds_slots_for_the_autoencoder_only(mnist_binary, tmp_path):
    model = VQVAE(**SMALL, seed=0)
    model.compile()
    model.train_on_batch(mnist_binary[:16])
    trained = model._trained_variables()
    assert len(trained) < len(model.trainable_variables)  # the prior's weights are not among them
    assert len(model.optimizer.variables) == 2 + 2 * len(trained)  # iterations, learning rate, Adam moments
    model.save(tmp_path / "vq.keras")
    restored = keras.models.load_model(tmp_path / "vq.keras")
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(a, b, err_msg=a.path)
