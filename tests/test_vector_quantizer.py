"""VectorQuantizer against numpy and hand-computed updates."""

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.layers.vector_quantizer import CodebookUsage, VectorQuantizer

rng = np.random.default_rng(0)


def _layer(**kwargs):
    layer = VectorQuantizer(**{"num_codes": 6, "code_dim": 3, **kwargs})
    layer.build((None, 4, 4, 3))
    return layer


def test_nearest_code_matches_numpy():
    layer = _layer()
    z = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    book = layer.codebook.numpy()
    expected = np.argmin(((z[..., None, :] - book) ** 2).sum(-1), axis=-1)
    quantized, indices, terms = layer(z)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(quantized, book[expected], atol=1e-6)
    per_example = ((z - book[expected]) ** 2).sum((1, 2, 3))
    np.testing.assert_allclose(terms["commitment_loss"], per_example.mean(), rtol=1e-5)
    np.testing.assert_allclose(terms["codebook_loss"], per_example.mean(), rtol=1e-5)
    np.testing.assert_allclose(terms["penalty"], 1.25 * per_example.mean(), rtol=1e-5)
    np.testing.assert_array_equal(terms["code_counts"], np.bincount(expected.ravel(), minlength=6))


def test_straight_through_gradient():
    layer = _layer()
    z = tf.constant(rng.normal(size=(2, 4, 4, 3)).astype("float32"))
    weights = tf.constant(rng.normal(size=(2, 4, 4, 3)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        quantized, _, terms = layer(z)
        downstream = tf.reduce_sum(quantized * weights)
    # The decoder's gradient reaches the encoder output unchanged...
    np.testing.assert_allclose(tape.gradient(downstream, z), weights)
    # ...and the codebook gets gradients from the codebook loss only.
    assert tape.gradient(downstream, layer.codebook) is None
    assert np.abs(tf.convert_to_tensor(tape.gradient(terms["codebook_loss"], layer.codebook))).sum() > 0


def test_ema_update_matches_a_hand_computed_step():
    layer = _layer(codebook_update="ema", decay=0.9, epsilon=1e-3)
    assert layer.trainable_weights == []
    before = layer.codebook.numpy()
    z = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    _, indices, terms = layer(z, training=True)
    flat, idx = z.reshape(-1, 3), indices.numpy().ravel()
    counts = 0.1 * np.bincount(idx, minlength=6)
    sums = 0.1 * np.stack([flat[idx == k].sum(0) for k in range(6)])
    total = counts.sum()
    smoothed = (counts + 1e-3) / (total + 6 * 1e-3) * total
    expected = np.where((counts > 0)[:, None], sums / smoothed[:, None], before)
    np.testing.assert_allclose(layer.ema_counts, counts, rtol=1e-6)
    np.testing.assert_allclose(layer.codebook, expected, rtol=1e-5)
    assert float(terms["penalty"]) == pytest.approx(0.25 * float(terms["commitment_loss"]))
    # Evaluation leaves the codebook alone.
    layer(z, training=False)
    np.testing.assert_allclose(layer.codebook, expected, rtol=1e-5)


def test_dead_codes_are_restarted_from_encoder_outputs():
    layer = _layer(dead_code_steps=2)
    far = layer.codebook.numpy()
    far[1:] += 100.0  # only code 0 is ever the nearest
    layer.codebook.assign(far)
    z = rng.normal(size=(2, 4, 4, 3)).astype("float32") * 0.01
    for _ in range(2):
        _, indices, _ = layer(z, training=True)
        assert set(np.unique(indices)) == {0}
    book = layer.codebook.numpy()
    flat = z.reshape(-1, 3)
    for k in range(1, 6):  # every dead code now sits on one of the batch's encodings
        assert np.min(np.abs(flat - book[k]).sum(-1)) < 1e-6
    _, indices, _ = layer(z, training=True)
    assert len(np.unique(indices)) > 1  # revived codes are in use again


def test_codebook_initialised_from_the_first_batch():
    layer = _layer(init_from_first_batch=True)
    z = rng.normal(size=(2, 4, 4, 3)).astype("float32") + 50.0
    layer(z, training=True)
    flat = z.reshape(-1, 3)
    for vector in layer.codebook.numpy():
        assert np.min(np.abs(flat - vector).sum(-1)) < 1e-5
    layer(z - 100.0, training=True)  # only the first batch initialises
    assert layer.codebook.numpy().min() > 40.0


def test_codebook_initializer_is_used_and_serialized():
    default = _layer(seed=3).codebook.numpy()
    assert np.allclose(default, _layer(seed=3).codebook.numpy())  # seeded
    assert np.abs(default).max() > 0.05 and np.abs(default).max() <= np.sqrt(3 / 3)  # variance 1/D
    layer = _layer(codebook_initializer={"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}})
    assert 0 < np.abs(layer.codebook.numpy()).max() <= 0.05
    restored = VectorQuantizer.from_config(layer.get_config())
    restored.build((None, 4, 4, 3))
    assert 0 < np.abs(restored.codebook.numpy()).max() <= 0.05
    assert restored.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="`codebook_initializer` must .*Received: codebook_initializer='no_such"):
        VectorQuantizer(4, 2, codebook_initializer="no_such_initializer")


def test_codebook_usage_over_several_batches():
    metric = CodebookUsage(4)
    metric.update_state([2.0, 2.0, 0.0, 0.0])
    metric.update_state([0.0, 0.0, 2.0, 2.0])
    result = {k: float(v) for k, v in metric.result().items()}
    assert result == pytest.approx({"perplexity": 4.0, "codebook_usage": 1.0})
    metric.reset_state()
    metric.update_state([3.0, 0.0, 0.0, 0.0])
    assert float(metric.result()["perplexity"]) == pytest.approx(1.0)
    assert float(metric.result()["codebook_usage"]) == pytest.approx(0.25)


@pytest.mark.parametrize("kwargs, arg", [({"num_codes": 0}, "num_codes"), ({"codebook_update": "kmeans"}, "codebook_update"),
                                         ({"decay": 1.0}, "decay"), ({"dead_code_steps": 0}, "dead_code_steps")])
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}` must .*Received: {arg}="):
        VectorQuantizer(**{"num_codes": 4, "code_dim": 2, **kwargs})


def test_wrong_code_dim():
    with pytest.raises(ValueError, match="last axis must be `code_dim`=3"):
        VectorQuantizer(4, 3).build((None, 7, 7, 5))


def test_ema_statistics_are_summed_across_replicas(two_replicas):
    z = rng.normal(size=(4, 4, 4, 3)).astype("float32")
    single = _layer(codebook_update="ema", decay=0.5)
    with two_replicas.scope():
        mirrored = _layer(codebook_update="ema", decay=0.5)
    mirrored.codebook.assign(single.codebook)
    single(z, training=True)
    single(z[::-1], training=True)

    @tf.function
    def step(batch):
        two_replicas.run(lambda b: mirrored(b, training=True)[0], args=(batch,))

    batches = tf.data.Dataset.from_tensor_slices(np.concatenate([z, z[::-1]])).batch(4)
    for batch in two_replicas.experimental_distribute_dataset(batches):
        step(batch)
    for name in ("codebook", "ema_counts", "ema_sums"):
        np.testing.assert_allclose(getattr(mirrored, name).numpy(), getattr(single, name).numpy(), rtol=1e-5, atol=1e-6)
