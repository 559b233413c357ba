import os

import matplotlib.image
import numpy as np
import pytest

from keras_vae import VAE, plotting


def test_tile_places_images_row_by_row():
    images = np.arange(5, dtype="float32")[:, None, None, None] * np.ones((5, 2, 3, 1), "float32")
    grid = plotting.tile(images, columns=3)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1, 1)
    assert grid[0, 0, 0] == 0 and grid[0, 4, 0] == 1 and grid[3, 4, 0] == 4
    assert grid[2, 0, 0] == 1.0  # the gap row
    assert grid[3, 8, 0] == 1.0  # the blank cell after the last image


def test_save_grid_writes_a_png_atomically(tmp_path):
    path = tmp_path / "grid.png"
    plotting.save_grid(np.zeros((6, 28, 28, 1)), path, title="t")
    image = matplotlib.image.imread(path)
    assert image.shape[1] == 3 * (3 * 29 - 1)  # 3 columns, zoom 3
    assert os.listdir(tmp_path) == ["grid.png"]


def test_plots_of_a_model(tmp_path, mnist_binary):
    model = VAE(latent_dim=2, hidden_units=(8,), seed=0)
    for fn, args in [(plotting.plot_samples, ()), (plotting.plot_reconstructions, (mnist_binary[:12],)),
                     (plotting.plot_interpolations, (mnist_binary[:6],))]:
        path = fn(model, *args, path=tmp_path / f"{fn.__name__}.png")
        assert matplotlib.image.imread(path).ndim == 3


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match=r"`images` must have shape \(N, height, width, channels\)"):
        plotting.tile(np.zeros((28, 28)))


def _linear_model(means=(0.0, 2.0, 1.0)):
    """A Gaussian-likelihood model on 4x4 images with known networks: the
    posterior N(means, 1) for every image, and a decoder that moves pixel u
    by 0.1 z_u from 0.5 (pixels 3.. stay 0.5)."""
    import keras

    from keras_vae import BaseVAE

    latent = len(means)
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2 * latent)])
    raw_scale = np.log(np.expm1(1.0 - 1e-5))  # softplus^-1 of 1, minus the floor
    encoder.layers[-1].set_weights([np.zeros((16, 2 * latent), "float32"),
                                    np.array([*means] + [raw_scale] * latent, "float32")])
    decoder = keras.Sequential([keras.Input((latent,)), keras.layers.Dense(16), keras.layers.Reshape((4, 4, 1))])
    kernel = np.zeros((latent, 16), "float32")
    kernel[np.arange(latent), np.arange(latent)] = 0.1
    decoder.layers[0].set_weights([kernel, np.full(16, 0.5, "float32")])
    return BaseVAE(encoder, decoder, data_shape=(4, 4, 1), latent_dim=latent, likelihood="gaussian", seed=0)


def test_a_traversal_moves_the_pixel_of_each_unit_in_kl_order():
    model = _linear_model(means=(0.0, 2.0, 1.0))
    x = np.full((3, 4, 4, 1), 0.5, "float32")
    np.testing.assert_allclose(plotting.unit_kls(model, x), [0.0, 2.0, 0.5], atol=1e-4)  # m^2 / 2 at sigma = 1
    units, statistic, _ = plotting.unit_order(model, x)
    assert list(units) == [1, 2, 0] and statistic == "KL"
    values = np.linspace(-3, 3, 5)
    expected = np.full((3, 5, 16), 0.5)
    expected[:, :, :3] += 0.1 * np.array([0.0, 2.0, 1.0])  # the base code: the posterior means
    for row, unit in enumerate(units):
        expected[row, :, unit] = 0.5 + 0.1 * values
    expected = plotting.tile(expected.reshape(15, 4, 4, 1), columns=5)
    np.testing.assert_allclose(plotting.traversal_grid(model, x, steps=5, limit=3.0), expected, atol=1e-5)
    top = plotting.traversal_grid(model, x, steps=5, limit=3.0, max_units=1)
    np.testing.assert_allclose(top, expected[:4], atol=1e-5)  # the first row of 4x4 images only


def test_unit_kls_add_up_to_the_analytic_kl(mnist_binary):
    import tensorflow_probability as tfp

    model = VAE(latent_dim=3, hidden_units=(8,), seed=0)
    x = mnist_binary[:32]
    kl = tfp.distributions.kl_divergence(model.encode(x), model.prior)
    np.testing.assert_allclose(plotting.unit_kls(model, x).sum(), np.mean(kl), rtol=1e-4)


def test_models_without_unit_kls_rank_units_by_code_variance(mnist_binary, tmp_path):
    from keras_vae import AE

    model = VAE(latent_dim=3, hidden_units=(8,), prior="vamp", seed=0)
    with pytest.raises(ValueError, match="`unit_kls` needs a model whose KL is a sum over latent units.*VampPrior"):
        plotting.unit_kls(model, mnist_binary[:8])
    units, statistic, variances = plotting.unit_order(model, mnist_binary[:8])
    assert statistic == "code variance" and np.all(np.diff(variances[units]) <= 0)
    path = plotting.plot_traversal(model, mnist_binary[:8], tmp_path / "t.png", steps=4)
    assert matplotlib.image.imread(path).ndim == 3
    with pytest.raises(ValueError, match="needs a model with a vector Gaussian latent .* Received: AE"):
        plotting.traversal_grid(AE(latent_dim=3, hidden_units=(8,), seed=0), mnist_binary[:8])
    with pytest.raises(ValueError, match="`steps` must be a positive integer. Received: steps=0"):
        plotting.traversal_grid(model, mnist_binary[:8], steps=0)


def test_image_summaries_reach_tensorboard(mnist_binary, tmp_path):
    """A real `fit` with Keras' TensorBoard and `ImageSummaries`; the event
    files read back with TensorFlow's own reader."""
    import glob

    import keras
    import tensorflow as tf

    from keras_vae import AE, callbacks

    def images_in(folder):
        found = {}
        for path in glob.glob(str(folder / "*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    found.setdefault(value.tag, []).append((event.step, value))
        return found

    for model, tags in ((VAE(latent_dim=3, hidden_units=(16,), seed=0), {"samples", "reconstructions", "traversal"}),
                        (AE(latent_dim=3, hidden_units=(16,), seed=0), {"samples", "reconstructions"})):
        log_dir = tmp_path / model.name
        model.compile()
        summaries = callbacks.ImageSummaries(log_dir, mnist_binary[:16], every_n_epochs=2, seed=3)
        model.fit(mnist_binary, batch_size=64, epochs=4, verbose=0,
                  callbacks=[keras.callbacks.TensorBoard(log_dir), summaries])
        found = images_in(log_dir / "images")
        assert set(found) == tags
        for tag, events in found.items():
            assert [step for step, _ in events] == [1, 3], tag  # after epochs 2 and 4 (0-based steps)
        expected = {"samples": plotting.sample_grid(model, 64, seed=3),
                    "reconstructions": plotting.reconstruction_grid(model, mnist_binary[:16])}
        if "traversal" in tags:
            expected["traversal"] = plotting.traversal_grid(model, mnist_binary[:16], steps=9, max_units=16)
        for tag, grid in expected.items():  # the last frame is the trained model's picture, 8-bit rounded
            frame = tf.io.decode_png(found[tag][-1][1].tensor.string_val[2]).numpy()  # [width, height, PNG]
            assert frame.shape == grid.shape
            np.testing.assert_allclose(frame / 255.0, np.clip(grid, 0, 1), atol=1 / 255 + 1e-6)
        assert "epoch_loss" in images_in(log_dir / "train")  # Keras' own scalars beside them
    with pytest.raises(ValueError, match=r"`images` must be a batch of at least 2 images.*Received: images.shape=\(1, 28"):
        callbacks.ImageSummaries(tmp_path, mnist_binary[:1])
    with pytest.raises(ValueError, match="`every_n_epochs` must be a positive integer. Received: every_n_epochs=0"):
        callbacks.ImageSummaries(tmp_path, mnist_binary[:4], every_n_epochs=0)


def test_a_manifold_decodes_the_normal_quantiles_with_z1_upwards(tmp_path):
    from scipy import stats

    model = _linear_model(means=(0.0, 0.0))
    size = 4
    grid = plotting.manifold_grid(model, size=size)
    quantiles = stats.norm.ppf((np.arange(size) + 0.5) / size)
    cells = np.stack([grid[r * 5 : r * 5 + 4, c * 5 : c * 5 + 4, 0] for r in range(size) for c in range(size)])
    cells = cells.reshape(size, size, 16)
    np.testing.assert_allclose(cells[:, :, 0], np.broadcast_to(0.5 + 0.1 * quantiles, (size, size)), atol=1e-5)
    np.testing.assert_allclose(cells[:, :, 1], np.broadcast_to(0.5 + 0.1 * quantiles[::-1, None], (size, size)),
                               atol=1e-5)  # the top row has the largest z[1]
    np.testing.assert_allclose(cells[:, :, 2:], 0.5, atol=1e-6)
    path = plotting.plot_manifold(model, tmp_path / "m.png", size=size)
    side = size * 5 - 1
    assert matplotlib.image.imread(path).shape[:2] == (round((side * 2 / 100 + 0.3) * 100), side * 2)
    with pytest.raises(ValueError, match=r"needs a model with a 2-d vector latent .* latent shape \(3,\)"):
        plotting.manifold_grid(_linear_model())
    with pytest.raises(ValueError, match="needs the standard normal prior .* Received: prior=VampPrior"):
        plotting.manifold_grid(VAE(latent_dim=2, hidden_units=(8,), prior="vamp", seed=0))


def test_a_latent_map_projects_on_the_principal_directions(mnist_binary, tmp_path):
    x = mnist_binary[:200]
    model = VAE(latent_dim=5, hidden_units=(16,), seed=0)
    points, axes = plotting.latent_map_points(model, x)
    codes = np.asarray(model.latent(x), "float64")
    eigenvalues = np.linalg.eigvalsh(np.cov(codes.T))[::-1]
    np.testing.assert_allclose(np.var(points, axis=0, ddof=1), eigenvalues[:2], rtol=1e-6)
    assert abs(np.corrcoef(points.T)[0, 1]) < 1e-6  # uncorrelated coordinates
    assert axes[0] == f"principal direction 1 ({eigenvalues[0] / eigenvalues.sum():.0%} of the variance)"
    two_d = VAE(latent_dim=2, hidden_units=(16,), seed=0)
    np.testing.assert_allclose(plotting.latent_map_points(two_d, x)[0], two_d.latent(x), rtol=1e-6)
    for labels in (None, np.arange(200) % 10):
        path = plotting.plot_latent_map(model, x, tmp_path / f"map_{labels is None}.png", labels=labels)
        assert matplotlib.image.imread(path).shape[:2] == (550, 600)
    with pytest.raises(ValueError, match=r"`labels` must have one label per image \(200\). Received: 3 labels"):
        plotting.plot_latent_map(model, x, tmp_path / "bad.png", labels=[1, 2, 3])
    assert not (tmp_path / "bad.png").exists()


def test_a_kl_chart_is_sized_by_its_units(tmp_path):
    from keras_vae import AE

    x = np.full((3, 4, 4, 1), 0.5, "float32")
    path = plotting.plot_kl_units(_linear_model(means=(0.0, 2.0, 1.0, 0.5)), x, tmp_path / "kl.png")
    assert matplotlib.image.imread(path).shape[:2] == (350, 400)  # the narrowest chart: 4 inches
    wide = VAE(latent_dim=40, hidden_units=(8,), seed=0)
    path = plotting.plot_kl_units(wide, np.zeros((3, 28, 28, 1), "float32"), tmp_path / "kl40.png")
    assert matplotlib.image.imread(path).shape[:2] == (350, 1150)  # 0.25 inch a bar, 1.5 for the axes
    with pytest.raises(ValueError, match="needs a model with a vector Gaussian latent .* Received: AE"):
        plotting.plot_kl_units(AE(latent_dim=3, hidden_units=(8,), seed=0), x, tmp_path / "ae.png")
