"""The sample-quality distance (`keras_vae.quality`): the Fréchet distance
against a numerical reference, the shipped classifier re-checked on real
test images, and the distance telling a trained model from an untrained one."""

import json
import shutil

import numpy as np
import pytest

from keras_vae import VAE, quality, zoo


def test_the_frechet_distance_matches_scipy_and_its_special_cases():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) * 2.0 + 1.0
    mean_a, mean_b, cov_a, cov_b = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    reference = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    np.testing.assert_allclose(quality.frechet_distance(a, b), reference, rtol=1e-8)
    assert abs(quality.frechet_distance(a, a)) < 1e-8
    shift = np.arange(6.0)
    np.testing.assert_allclose(quality.frechet_distance(a, a + shift), np.sum(shift**2), rtol=1e-8)
    with pytest.raises(ValueError, match=r"`features_a` and `features_b` must be \[N, D\] arrays.*\(500, 6\) and \(5,\)"):
        quality.frechet_distance(a, np.zeros(5))


def grey_images(dataset, tfds_dir, manual_dirs, count=2000):
    from keras_vae import data

    ds = data.load_dataset(dataset, split="test", batch_size=count, num_examples=count, shuffle=False,
                           with_labels=True, data_dir=str(tfds_dir), manual_dir=str(manual_dirs[dataset]))
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


@pytest.fixture(scope="module")
def grey_test(tfds_dir, manual_dirs):
    return grey_images("mnist", tfds_dir, manual_dirs)


@pytest.mark.parametrize("dataset, floor", [("mnist", 0.99), ("fashion_mnist", 0.88)])
def test_each_shipped_classifier_reaches_its_card_accuracy(dataset, floor, tfds_dir, manual_dirs):
    assert dataset in quality.CLASSIFIERS
    x, y = grey_images(dataset, tfds_dir, manual_dirs, count=1000)
    record = quality.classifier_record(dataset)
    assert record["dataset"] == dataset and record["test_accuracy"] > floor
    accuracy = np.mean(np.argmax(quality.classifier(dataset).predict(x, verbose=0), -1) == y)
    assert accuracy >= record["test_accuracy"] - 0.02
    assert quality.features(x[:10], dataset).shape == (10, 128)


def test_a_trained_model_scores_closer_to_real_images_than_an_untrained_one(grey_test):
    x, _ = grey_test
    real = quality.frechet_distance(quality.features(x[:1000]), quality.features(x[1000:]))
    trained = quality.sample_frechet_distance(zoo.load("conv_vae_mnist"), x[1000:], num_samples=1000)
    untrained = quality.sample_frechet_distance(VAE(latent_dim=4, hidden_units=(8,), seed=0), x[1000:],
                                                num_samples=1000)
    assert real < trained < untrained and untrained > 2 * trained
    a, b = quality.generate(zoo.load("vae_mnist"), 30, seed=4, batch_size=7), quality.generate(
        zoo.load("vae_mnist"), 30, seed=4, batch_size=7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (30, 28, 28, 1) and a.min() >= 0 and a.max() <= 1


def test_bad_images_and_a_damaged_classifier_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"`images` must have shape \(N, 28, 28, 1\). Received: images.shape=\(2, 28, 28\)"):
        quality.features(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match=r"`images` must be grey levels in \[0, 1\].*\[0, 255\]"):
        quality.features(np.full((2, 28, 28, 1), 255.0) * np.arange(2)[:, None, None, None])
    with pytest.raises(ValueError, match=r"`dataset` must be one of \('mnist', 'fashion_mnist'\). Received: dataset='cifar10'"):
        quality.classifier("cifar10")
    damaged = tmp_path / "mnist_classifier"
    shutil.copytree(quality.classifier_dir("mnist"), damaged)
    content = bytearray((damaged / quality.CLASSIFIER_FILE).read_bytes())
    content[len(content) // 2] ^= 0xFF
    (damaged / quality.CLASSIFIER_FILE).write_bytes(bytes(content))
    monkeypatch.setattr(quality, "classifier_dir", lambda dataset: str(damaged))  # the copy, not the shipped file
    monkeypatch.setattr(quality, "_loaded", {})
    with pytest.raises(ValueError, match="the mnist feature classifier: .* is corrupted or truncated"):
        quality.classifier("mnist")
    assert json.loads((damaged / quality.RECORD_FILE).read_text())["files"][quality.CLASSIFIER_FILE]["bytes"] == len(content)
