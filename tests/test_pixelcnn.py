import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_vae.layers.pixelcnn import MaskedConv2D, causal_mask
from keras_vae.models.pixelcnn import PixelCNN

K, H, W = 8, 5, 5


def small(**overrides):
    return PixelCNN(**{"num_codes": K, "map_shape": (H, W), "filters": 16, "num_layers": 4, **overrides})


def test_masks_keep_only_earlier_positions():
    np.testing.assert_array_equal(causal_mask(3, "vertical", "A")[..., 0, 0], [[1, 1, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask(3, "vertical", "B")[..., 0, 0], [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask(5, "horizontal", "A")[..., 0, 0], [[1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(causal_mask(5, "horizontal", "B")[..., 0, 0], [[1, 1, 1, 0, 0]])


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_logits_at_a_position_depend_on_exactly_the_earlier_positions(kernel_size):
    """Perturbing the code at position p changes no logits at positions <= p
    (causality) and the logits at every position > p (no blind spot)."""
    model = small(kernel_size=kernel_size, num_layers=H if kernel_size == 3 else 3)
    rng = np.random.default_rng(0)
    base = rng.integers(0, K, (H, W))
    batch = np.repeat(base[None], H * W + 1, axis=0)
    for p in range(H * W):
        i, j = divmod(p, W)
        batch[p + 1, i, j] = (base[i, j] + 1) % K
    logits = model(batch).numpy().reshape(H * W + 1, H * W, K)
    for p in range(H * W):
        changed = np.abs(logits[p + 1] - logits[0]).max(axis=-1)
        np.testing.assert_array_equal(changed[: p + 1], 0.0, err_msg=f"position {p} leaks into earlier outputs")
        assert (changed[p + 1 :] > 1e-7).all(), f"outputs after {p} blind to it: {changed[p + 1:]}"


def _two_patterns(n):
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    a, b = (i + j) % K, (i * j + 3) % K
    return np.stack([a, b] * (n // 2)).astype("int32"), a, b


def test_fit_learns_a_mixture_and_samples_whole_maps_from_it():
    """Two maps, half the data each: an autoregressive sampler must emit one of
    them whole (the first code decides); sampling each position on its own
    would mix them. Temperature 0.5 keeps the first code's 50/50 and squares
    away the small errors left at the other positions."""
    codes, a, b = _two_patterns(256)
    keras.utils.set_random_seed(0)
    model = small()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(codes, batch_size=32, epochs=15, verbose=0).history
    # The entropy of the mixture is log 2 per map.
    assert history["loss"][-1] < 1.1 * np.log(2) / (H * W)
    assert model.trained_steps == 15 * 8
    samples = model.sample(32, seed=1, temperature=0.5).numpy()
    is_a = (samples == a).all(axis=(1, 2))
    is_b = (samples == b).all(axis=(1, 2))
    assert (is_a | is_b).all()
    assert 4 <= is_a.sum() <= 28
    np.testing.assert_array_equal(samples, model.sample(32, seed=1, temperature=0.5))
    assert not np.array_equal(samples, model.sample(32, seed=2, temperature=0.5))
    np.testing.assert_allclose(model.log_prob(codes[:2]), np.log(0.5), atol=0.1)


def test_an_untrained_prior_is_a_normalised_distribution_over_all_maps():
    """Summed over every possible map, p(z) is 1 only if each position's
    conditional sees nothing at or after it: a mask that leaked would give a
    product of conditionals that is not a distribution."""
    model = PixelCNN(3, (2, 2), filters=8, num_layers=2, kernel_size=3)
    every_map = np.array(list(itertools.product(range(3), repeat=4)), "int32").reshape(-1, 2, 2)
    for log_prob in (model.log_prob(every_map), model.distribution().log_prob(every_map)):
        assert float(tf.reduce_logsumexp(log_prob)) == pytest.approx(0.0, abs=1e-5)


def test_temperature_flattens_or_sharpens():
    model = small()
    codes = _two_patterns(2)[0]
    cold, hot = model.conditionals(codes, 0.1), model.conditionals(codes, 10.0)
    assert float(tf.reduce_mean(cold.distribution.entropy())) < float(tf.reduce_mean(hot.distribution.entropy()))
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0. Received: temperature=0"):
        model.sample(2, temperature=0)


def test_objective_is_nats_per_code_and_round_trips(tmp_path):
    model = small()
    codes = _two_patterns(8)[0]
    terms = model.compute_terms(codes)
    assert float(terms["loss"]) == pytest.approx(-float(np.mean(model.log_prob(codes))) / (H * W), rel=1e-6)
    model.compile()
    model.fit(codes, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "p.keras")
    restored = keras.models.load_model(tmp_path / "p.keras")
    assert restored.get_config() == model.get_config() and restored.trained_steps == 2
    np.testing.assert_array_equal(restored(codes), model(codes))
    np.testing.assert_array_equal(restored.sample(3, seed=5), model.sample(3, seed=5))


def test_two_replicas_train_like_one_device(two_replicas):
    codes = _two_patterns(64)[0]

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            model = small()
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(tf.data.Dataset.from_tensor_slices(codes).batch(16), epochs=1, verbose=0)
        return model

    single, mirrored = train(tf.distribute.get_strategy()), train(two_replicas)
    assert single.trained_steps == mirrored.trained_steps == 4
    for a, b in zip(single.weights, mirrored.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path)


@pytest.mark.parametrize("codes, message", [
    (np.full((2, H, W), K), r"`x` must lie in \[0, 8\). Received: x with values in \[8, 8\]"),
    (np.zeros((2, H, W), "float32"), "`x` must hold integers. Received: x.dtype=float32"),
    (np.zeros((2, H, W + 1), "int32"), r"`x` must have shape \(None, 5, 5\). Received: x.shape=\(2, 5, 6\)"),
])
def test_bad_code_maps_are_rejected_before_training(codes, message):
    model = small()
    model.compile()
    with pytest.raises(ValueError, match=message):
        model.fit(codes, verbose=0)
    assert model.trained_steps == 0
    with pytest.raises(ValueError, match=message.replace("`x`", "`codes`").replace(" x", " codes")):
        model.log_prob(codes)


@pytest.mark.parametrize("kwargs, name", [
    ({"kernel_size": 4}, "kernel_size"), ({"num_codes": 0}, "num_codes"), ({"map_shape": (7,)}, "map_shape"),
    ({"num_layers": -1}, "num_layers"),
])
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        small(**kwargs)


def test_masked_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`stack` must be one of"):
        MaskedConv2D(4, 3, "diagonal", "A")
    with pytest.raises(ValueError, match="`mask_type` must be one of"):
        MaskedConv2D(4, 3, "vertical", "C")


def test_datasets_of_code_maps_are_checked_by_their_spec():
    model = small()
    model.compile()
    floats = tf.data.Dataset.from_tensor_slices(np.zeros((4, H, W), "float32")).batch(2)
    with pytest.raises(ValueError, match="`x` must hold integers. Received: x.dtype=float32"):
        model.fit(floats, verbose=0)
    wrong = tf.data.Dataset.from_tensor_slices(np.zeros((4, H + 1, W), "int32")).batch(2)
    with pytest.raises(ValueError, match=r"`validation_data` must have shape \(None, 5, 5\)"):
        model.fit(_two_patterns(4)[0], validation_data=wrong, verbose=0)


def test_dropout_acts_in_training_only():
    model = small(dropout=0.5)
    codes = _two_patterns(4)[0]
    np.testing.assert_array_equal(model(codes), model(codes))
    assert not np.array_equal(model(codes, training=True), model(codes, training=True))
    assert PixelCNN.from_config(model.get_config()).blocks[1].dropout == 0.5
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\). Received: dropout=1.0"):
        small(dropout=1.0)
