"""Your own images: `from_directory` on real MNIST / Fashion-MNIST digits
written by the test as image files, `from_arrays` on the same digits, the
8-bit and dequantized value conventions, and the name-based TFDS path."""

import json
import os
import re
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_vae import data

NUM = 120  # digits written to files


def _first_test_images(name, tfds_dir, manual_dirs):
    """The first `NUM` test images of `name` as uint8 `[N, 28, 28]`, and labels."""
    ds = data.load_dataset(name, split="test", batch_size=NUM, num_examples=NUM, values="8bit",
                           with_labels=True, data_dir=str(tfds_dir), manual_dir=manual_dirs[name])
    images, labels = next(iter(ds))
    return images.numpy()[..., 0].astype("uint8"), labels.numpy()


@pytest.fixture(scope="module")
def digits(tfds_dir, manual_dirs):
    """The first `NUM` Fashion-MNIST test images and labels."""
    return _first_test_images("fashion_mnist", tfds_dir, manual_dirs)


@pytest.fixture(scope="module")
def mnist_digits(tfds_dir, manual_dirs):
    """The first `NUM` MNIST test images and labels."""
    return _first_test_images("mnist", tfds_dir, manual_dirs)


def _write(folder, images, labels, formats=("png",), colour=False):
    """One file per image, `folder/<label>/<index>.<format>` (formats cycled)."""
    for i, (image, label) in enumerate(zip(images, labels)):
        os.makedirs(folder / str(label), exist_ok=True)
        pixels = np.stack([image] * 3, -1) if colour else image
        Image.fromarray(pixels).save(folder / str(label) / f"{i:04d}.{formats[i % len(formats)]}")
    return folder


def _by_path_order(images, labels):
    """The images in the order `from_directory` reads `_write`'s files: by label, then index."""
    order = sorted(range(len(labels)), key=lambda i: (str(labels[i]), i))
    return images[order], labels[order]


def _all(ds):
    batches = list(ds.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


@pytest.mark.parametrize("source", ["mnist_digits", "digits"])
def test_directory_of_grey_files_gives_the_stored_pixels(tmp_path, source, request):
    images, labels = request.getfixturevalue(source)
    folder = _write(tmp_path / "grey", images, labels, formats=("png", "bmp", "gif"))
    x, y = _all(data.from_directory(folder, values="8bit", batch_size=50, with_labels=True))
    want_x, want_y = _by_path_order(images, labels)
    assert x.shape == (NUM, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], want_x)
    np.testing.assert_array_equal(y, np.searchsorted(sorted(set(map(str, labels))), [str(v) for v in want_y]))
    unit = _all(data.from_directory(folder, batch_size=NUM))
    np.testing.assert_allclose(unit[..., 0], want_x / 255.0, rtol=1e-6)


@pytest.mark.parametrize("source", ["mnist_digits", "digits"])
def test_directory_of_colour_files(tmp_path, source, request):
    images, labels = request.getfixturevalue(source)
    folder = _write(tmp_path / "colour", images[:40], labels[:40], colour=True)
    x = _all(data.from_directory(folder, values="8bit", batch_size=40))
    want, _ = _by_path_order(images[:40], labels[:40])
    assert x.shape == (40, 28, 28, 3)
    for c in range(3):
        np.testing.assert_array_equal(x[..., c], want)
    grey = _all(data.from_directory(folder, values="8bit", batch_size=40, channels=1))
    np.testing.assert_array_equal(grey[..., 0], want)  # luminance of equal channels


def test_directory_split_crop_resize_and_shuffle(tmp_path, digits):
    images, labels = digits
    folder = _write(tmp_path / "split", images, labels)
    train = _all(data.from_directory(folder, split="train", values="8bit", batch_size=8, drop_remainder=False,
                                     shuffle=False))
    test = _all(data.from_directory(folder, split="test", values="8bit", batch_size=8, validation_split=0.25))
    test_again = _all(data.from_directory(folder, split="test", values="8bit", batch_size=8, validation_split=0.25,
                                          seed=3))
    np.testing.assert_array_equal(test, test_again)  # the split does not depend on the seed
    small = _all(data.from_directory(folder, split="test", values="8bit", batch_size=8))
    assert 0 < len(small) < len(test) < NUM / 2
    assert len(train) + len(small) == NUM
    flat = {x.tobytes() for x in train}
    assert not any(x.tobytes() in flat for x in small)
    ds = data.from_directory(folder, split="train", batch_size=16, crop=20, image_size=(32, 24), values="8bit", seed=0)
    assert ds.element_spec.shape.as_list() == [16, 32, 24, 1]
    epochs = [_all(ds), _all(ds)]
    assert len(epochs[0]) == len(train) // 16 * 16  # training drops the last incomplete batch
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled
    assert np.array_equal(epochs[0], np.round(epochs[0])) and epochs[0].max() <= 255


def test_directory_bad_input(tmp_path, digits):
    images, labels = digits
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"`path` must hold image files .*Received: path=.*empty.*with none"):
        data.from_directory(empty)
    with pytest.raises(ValueError, match=r"`path` must be an existing folder"):
        data.from_directory(tmp_path / "missing")
    mixed = _write(tmp_path / "mixed", images[:4], labels[:4])
    Image.fromarray(np.zeros((30, 31), "uint8")).save(mixed / "big.png")
    with pytest.raises(ValueError, match=r"`image_size` must be given for images of different sizes.*30x31"):
        data.from_directory(mixed, batch_size=2)
    assert _all(data.from_directory(mixed, batch_size=2, image_size=28)).shape == (5, 28, 28, 1)
    # Mixed sizes: the pipeline knows no stored size, so the headers are checked before it is built.
    with pytest.raises(ValueError, match=r"`crop` must fit in every image; .*\.png in .* is 28x28. Received: crop=\(29, 29\)"):
        data.from_directory(mixed, image_size=28, crop=29, batch_size=2)
    assert _all(data.from_directory(mixed, image_size=20, crop=28, batch_size=2)).shape == (5, 20, 20, 1)
    (mixed / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"readable image files.*broken\.png"):
        data.from_directory(mixed, image_size=28)
    with pytest.raises(ValueError, match=r"`crop` must fit in every image; .*\.png in .* is 28x28"):
        data.from_directory(_write(tmp_path / "ok", images[:4], labels[:4]), crop=29, batch_size=2)
    with pytest.raises(ValueError, match=r"`values` must be one of"):
        data.from_directory(mixed, values="16bit")
    with pytest.raises(ValueError, match=r"`binarize` applies to grey values"):
        data.from_directory(mixed, values="8bit", binarize="dynamic")


def test_arrays_and_files_of_arrays(tmp_path, digits):
    images, labels = digits
    x = _all(data.from_arrays(images, batch_size=NUM, values="8bit"))
    np.testing.assert_array_equal(x[..., 0], images)
    floats = _all(data.from_arrays(images[..., None] / 255.0, batch_size=NUM))
    np.testing.assert_allclose(floats[..., 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(_all(data.from_arrays(images[..., None] / 255.0, batch_size=NUM, values="8bit")),
                                  x)
    np.savez(tmp_path / "split.npz", x_train=images[:100], y_train=labels[:100], x_test=images[100:],
             y_test=labels[100:])
    xt, yt = _all(data.from_arrays(tmp_path / "split.npz", split="test", batch_size=7, with_labels=True,
                                   values="8bit"))
    np.testing.assert_array_equal(xt[..., 0], images[100:])
    np.testing.assert_array_equal(yt, labels[100:])
    np.save(tmp_path / "one.npy", images)
    held = _all(data.from_arrays(tmp_path / "one.npy", split="test", batch_size=5, values="8bit"))
    kept = _all(data.from_arrays(tmp_path / "one.npy", split="train", batch_size=5, values="8bit",
                                 drop_remainder=False, shuffle=False))
    assert len(held) + len(kept) == NUM and 0 < len(held) < NUM / 4
    with pytest.raises(ValueError, match=r"`split` must be 'train' or 'test'"):
        data.from_arrays(tmp_path / "split.npz")
    with pytest.raises(ValueError, match=r"floats must lie in \[0, 1\]"):
        data.from_arrays(images.astype("float32"))
    with pytest.raises(ValueError, match=r"integers must lie in 0\.\.255"):
        data.from_arrays(images.astype("int32") * 2)
    with pytest.raises(ValueError, match=r"`images` must have shape \[N, H, W\] or \[N, H, W, C\]"):
        data.from_arrays(images[0, 0])
    with pytest.raises(ValueError, match=r"existing \.npy / \.npz file"):
        data.from_arrays(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"`crop` must fit in the images, 28x28. Received: crop=\(29, 29\)"):
        data.from_arrays(images, crop=29)


def test_dequantized_values(digits):
    images, _ = digits

    def make():
        return data.from_arrays(images, batch_size=40, values="dequantized", seed=5)

    a, b = [_all(make()) for _ in range(2)]
    ds = make()
    first, second = _all(ds), _all(ds)
    np.testing.assert_array_equal(a, b)  # reproducible from the seed
    assert not np.array_equal(first, second)  # fresh noise every epoch
    noise = first[..., 0] - images
    assert noise.min() >= 0 and noise.max() < 1 and abs(noise.mean() - 0.5) < 0.01


def test_any_tfds_image_dataset_by_name(tmp_path):
    """cifar10's files cannot be downloaded here: `tfds.testing.mock_data`
    stands in for them (random images of the builder's real feature spec),
    and the download host check is patched out, as there is no network."""
    with tfds.testing.mock_data(num_examples=12), \
            mock.patch.object(data, "_first_unreachable_host", return_value=None):
        ds = data.load_dataset("cifar10", split="train", batch_size=4, values="8bit", data_dir=str(tmp_path), seed=0)
        assert ds.element_spec.shape.as_list() == [4, 32, 32, 3]
        x = _all(ds)
        assert x.shape == (12, 32, 32, 3) and np.array_equal(x, np.round(x)) and 0 <= x.min() and x.max() <= 255
        small = data.load_dataset("cifar10", split="test", batch_size=5, crop=24, image_size=16, data_dir=str(tmp_path))
        assert small.element_spec.shape.as_list() == [None, 16, 16, 3]
        assert _all(small).max() <= 1.0
        with pytest.raises(ValueError, match=r"`name` must be a TFDS dataset with an image feature.*imdb_reviews"):
            data.load_dataset("imdb_reviews", data_dir=str(tmp_path))


def test_dsprites_binary_uint8_images_keep_the_value_conventions(tmp_path):
    """TFDS stores dSprites' pixels as uint8 0 and 1; its files cannot be
    downloaded here, so `tfds.testing.mock_data(max_value=2)` stands in
    (random 0/1 images of the builder's real feature spec). `values="unit"`
    gives {0, 1} (not {0, 1/255}) and `"8bit"` {0, 255}."""
    with tfds.testing.mock_data(num_examples=8, max_value=2), \
            mock.patch.object(data, "_first_unreachable_host", return_value=None):
        unit = _all(data.load_dataset("dsprites", split="train", batch_size=4, shuffle=False, data_dir=str(tmp_path)))
        eight = _all(data.load_dataset("dsprites", split="train", batch_size=4, shuffle=False, values="8bit",
                                       data_dir=str(tmp_path)))
    assert unit.shape == (8, 64, 64, 1) and set(np.unique(unit)) == {0.0, 1.0}
    np.testing.assert_array_equal(eight, unit * 255)


# ---------------------------------------------------------------------- #
# The command line on such data
# ---------------------------------------------------------------------- #
def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "keras_vae.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


def test_cli_trains_on_8bit_fashion_mnist_and_its_bits_per_dim_improve(tmp_path, tfds_dir, manual_dirs):
    """A short real run: ConvVAE with the discretized logistic on Fashion-MNIST's
    8-bit grey values, against the same model untrained, on the same images."""
    import keras

    import keras_vae

    data_args = ("--data-dir", tfds_dir, "--manual-dir", manual_dirs["fashion_mnist"])
    out = tmp_path / "run"
    result = _cli("train", "conv_vae", "--dataset", "fashion_mnist", "--likelihood", "discretized_logistic",
                  "--train-examples", 6000, "--epochs", 2, "--batch-size", 100, "--output-dir", out, *data_args)
    assert result.returncode == 0, result.stderr[-3000:]
    result = _cli("evaluate", out / "model.keras", "--dataset", "fashion_mnist", "--split", "test[:1000]",
                  "--iw-samples", 2, *data_args)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    model = keras.saving.load_model(out / "model.keras")
    assert model.likelihood_name == "discretized_logistic" and model.data_shape == (28, 28, 1)
    untrained = keras_vae.ConvVAE(likelihood="discretized_logistic", seed=0)
    untrained.compile()
    test = data.load_dataset("fashion_mnist", split="test[:1000]", batch_size=128, values="8bit",
                             data_dir=str(tfds_dir), manual_dir=manual_dirs["fashion_mnist"])
    before = untrained.evaluate(test, iw_samples=2, return_dict=True, verbose=0)["bits_per_dim"]
    # Untrained: about 5.4 bits (broad logistics at 127.5; the open edge bin
    # gives Fashion-MNIST's black background about half the mass).
    assert before > 4.5
    assert trained["bits_per_dim"] < before - 1.0, (trained, before)


def test_cli_trains_and_evaluates_on_a_folder_of_colour_images(tmp_path, digits):
    import keras

    images, labels = digits
    folder = _write(tmp_path / "photos", images, labels, colour=True)
    out = tmp_path / "run"
    result = _cli("train", "conv_vae", "--images", folder, "--epochs", 1, "--batch-size", 20, "--latent-dim", 4,
                  "--image-size", 32, "--output-dir", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("conv_vae on photos: 1 epochs")
    model = keras.saving.load_model(out / "model.keras")
    assert model.data_shape == (32, 32, 3) and model.likelihood_name == "discretized_logistic"
    assert model.filters == (32, 64, 128)  # three stages for 32 pixels
    result = _cli("evaluate", out / "model.keras", "--images", folder, "--image-size", 32)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["dataset"] == "photos"


def test_cli_data_errors_are_one_line_before_training(tmp_path, capsys):
    from keras_vae import cli

    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    for i in range(10):  # both sizes in the training split, whichever files the hash holds out
        Image.fromarray(np.zeros((28, 28), "uint8")).save(tmp_path / "mixed" / f"small{i}.png")
        Image.fromarray(np.zeros((30, 31), "uint8")).save(tmp_path / "mixed" / f"big{i}.png")
    cases = [
        (["--images", tmp_path / "empty"], r"`--images` must hold image files .*Received: --images '.*empty'"),
        (["--dataset", "no_such_dataset"], r"`--dataset` must be a TFDS dataset name"),
        (["--dataset", "imdb_reviews"], r"`--dataset` must be a TFDS dataset with an image feature"),
        (["--arrays", tmp_path / "none.npz"], r"`--arrays` must be an array or an existing \.npy / \.npz file"),
        (["--images", tmp_path / "mixed"], r"`--image-size` must be given for images of different sizes"),
        (["--images", tmp_path / "mixed", "--image-size", "28", "--crop", "29"],
         r"`--crop` must fit in every image; .* is 28x28. Received: --crop \(29, 29\)"),
    ]
    for args, match in cases:
        assert cli.main(["train", "conv_vae", *map(str, args), "--data-dir", str(tmp_path / "tfds")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(match, err), err
    with pytest.raises(SystemExit):
        cli.main(["train", "conv_vae", "--images", str(tmp_path), "--dataset", "mnist"])
    assert "not allowed with argument" in capsys.readouterr().err


# ---------------------------------------------------------------------- #
# Models on such data
# ---------------------------------------------------------------------- #
def test_conv_networks_are_sized_for_the_image():
    import keras_vae

    for side, filters, smallest in [(28, (32, 64), 7), (32, (32, 64, 128), 4), (64, (32, 64, 128, 256), 4)]:
        for network in ("conv", "residual"):
            model = keras_vae.ConvVAE(data_shape=(side, side, 3), latent_dim=4, network=network, blocks_per_stage=1,
                                      likelihood="discretized_logistic", seed=0)
            assert model.filters == filters
            flat = [layer for layer in model.encoder.layers if layer.__class__.__name__ == "Flatten"][0]
            assert flat.input.shape[1:3] == (smallest, smallest)
            assert model.decoder.output_shape == (None, side, side, 6)  # loc and log scale per channel
    assert keras_vae.ConvVAE(data_shape=(64, 64, 3), filters=16).filters == (16, 32, 64, 128)
    assert keras_vae.ConvVAE(data_shape=(64, 64, 3), filters=(8, 8)).filters == (8, 8)


@pytest.mark.parametrize("likelihood", ["discretized_logistic", "mixture_of_3", "dequantized_gaussian"])
def test_models_train_save_and_score_on_8bit_images(tmp_path, digits, likelihood):
    import keras

    import keras_vae
    from keras_vae import likelihoods

    images, _ = digits
    shape = (28, 28, 1)
    lik = likelihoods.DiscretizedLogistic(shape, num_components=3) if likelihood == "mixture_of_3" else likelihood
    values = "dequantized" if likelihood == "dequantized_gaussian" else "8bit"
    train = data.from_arrays(images, batch_size=40, values=values, seed=0, shuffle=True)
    # Every model class with the discretized logistic; the other likelihoods
    # share its decoder sizing and input scaling, so ConvVAE alone runs them.
    classes = (keras_vae.VAE, keras_vae.ConvVAE, keras_vae.VQVAE) if likelihood == "discretized_logistic" else \
        (keras_vae.ConvVAE,)
    for cls in classes:
        model = cls(latent_dim=4, likelihood=lik, seed=0) if cls is not keras_vae.VQVAE else \
            cls(code_dim=4, num_codes=8, likelihood=lik, seed=0)
        assert model.encoder.layers[0].name == "to_unit"  # the network sees [0, 1]
        model.compile(optimizer="adam")
        history = model.fit(train, epochs=3, verbose=0).history
        assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
        x = next(iter(data.from_arrays(images[:8], batch_size=8, values=values, seed=1)))
        recon = model.reconstruct(x).numpy()
        assert recon.shape == (8, *shape) and np.isfinite(recon).all()
        if values == "8bit":  # a mean of masses on 0..255 (a Gaussian's mean is unbounded)
            assert 0 <= recon.min() and recon.max() <= 255
        if cls is keras_vae.VQVAE:
            continue
        path = tmp_path / f"{cls.__name__}.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        assert type(restored.likelihood) is type(model.likelihood)
        np.testing.assert_allclose(restored.score(x, num_samples=4)["log_likelihood"],
                                   model.score(x, num_samples=4)["log_likelihood"], rtol=1e-5)
        bits = model.evaluate(x, iw_samples=4, return_dict=True, verbose=0)["bits_per_dim"]
        assert 0 < bits < (8.5 if values == "8bit" else 12.0)  # a short run: a Gaussian starts far from 8 bits
