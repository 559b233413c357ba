"""The pretrained zoo: registry, checksums, class checks, loading from an
installed wheel, and every shipped entry re-measured on real test images
against the numbers in its model card."""

import functools
import json
import os
import pathlib
import re
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import keras_vae
from keras_vae import data, zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import active_units  # noqa: E402
import binarization_entropy  # noqa: E402
import compare_nll  # noqa: E402


def test_list_describes_every_entry():
    entries = zoo.list()
    assert sorted(e["name"] for e in entries) == [
        "ae_mnist", "beta_tcvae_sprites", "beta_vae_capacity_mnist", "beta_vae_mnist", "beta_vae_sprites",
        "conv_vae_fashion_mnist", "conv_vae_mnist", "factor_vae_sprites", "resnet_vae_mnist", "vae_mnist",
        "vq_vae_mnist",
    ]
    for entry in entries:
        assert entry["description"] and entry["metrics"]
        assert issubclass(zoo.class_of(entry["name"]), keras_vae.BaseVAE)
        card = open(os.path.join(zoo.entry_dir(entry["name"]), "README.md")).read()
        for info in json.load(open(os.path.join(zoo.entry_dir(entry["name"]), "preset.json")))["files"].values():
            assert info["sha256"] in card  # the card states the checksums it ships


def test_load_gives_a_compiled_model_ready_to_fine_tune_sample_and_evaluate(mnist_binary):
    model = zoo.load("vq_vae_mnist")
    assert isinstance(model, keras_vae.VQVAE) and model.compiled and model.pixelcnn.trained_steps > 0
    x = mnist_binary[:32] * 0.9
    before = [w.numpy() for w in model.encoder.weights]
    logs = model.train_on_batch(x, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.encoder.weights))
    assert set(model.evaluate(x, return_dict=True, verbose=0)) >= {"loss", "perplexity"}
    np.testing.assert_array_equal(model.sample(2, seed=3), model.sample(2, seed=3))
    assert type(keras_vae.VQVAE.from_preset("vq_vae_mnist")) is keras_vae.VQVAE
    assert isinstance(keras_vae.BaseVAE.from_preset("vq_vae_mnist"), keras_vae.VQVAE)


def test_unknown_names_and_wrong_classes_are_refused():
    with pytest.raises(ValueError, match=r"`name` must be one of the zoo's entries: .*vq_vae_mnist.*Received: name='vq_vae'"):
        zoo.load("vq_vae")
    with pytest.raises(ValueError, match=r"holds a VQVAE, which is not a ConvVAE.*VQVAE.from_preset\('vq_vae_mnist'\)"):
        keras_vae.ConvVAE.from_preset("vq_vae_mnist")
    # AE reuses VAE's networks (a subclass) but defines no density: not a VAE.
    with pytest.raises(ValueError, match=r"holds a AE, which is not a VAE.*AE.from_preset\('ae_mnist'\)"):
        keras_vae.VAE.from_preset("ae_mnist")
    assert type(keras_vae.AE.from_preset("ae_mnist")) is keras_vae.AE
    assert type(keras_vae.VAE.from_preset("beta_vae_mnist")) is keras_vae.BetaVAE  # a beta-VAE is a VAE


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    """A private copy of the zoo to damage."""
    root = tmp_path / "zoo"
    shutil.copytree(zoo.ROOT, root, ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    monkeypatch.setattr(zoo, "ROOT", str(root))
    return root


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "config"])
def test_corrupted_files_are_refused_before_loading(zoo_copy, damage):
    weights = zoo_copy / "vq_vae_mnist" / zoo.WEIGHTS_FILE
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-1000])
    elif damage == "flip":  # same size, one byte of a weight changed
        content = bytearray(weights.read_bytes())
        content[len(content) // 2] ^= 0xFF
        weights.write_bytes(bytes(content))
    elif damage == "delete":
        weights.unlink()
    else:
        config = zoo_copy / "vq_vae_mnist" / zoo.CONFIG_FILE
        config.write_text(config.read_text().replace('"num_codes": 128', '"num_codes": 64'))
    message = "is missing" if damage == "delete" else "is corrupted or truncated"
    with pytest.raises(ValueError, match=f"zoo entry 'vq_vae_mnist'.*{message}"):
        zoo.load("vq_vae_mnist")


def test_a_damaged_preset_is_named(zoo_copy):
    (zoo_copy / "vq_vae_mnist" / zoo.PRESET_FILE).write_text('{"class_name": ')
    for call in (lambda: zoo.load("vq_vae_mnist"), zoo.list):
        with pytest.raises(ValueError, match=r"zoo entry 'vq_vae_mnist': .*preset.json is damaged \(not valid JSON"):
            call()
    (zoo_copy / "vq_vae_mnist" / zoo.PRESET_FILE).write_text("[]")
    with pytest.raises(ValueError, match=r"preset.json is damaged \(it lacks the keys"):
        zoo.load("vq_vae_mnist")


def _site_dirs():
    """This environment's site-packages (a venv's, a conda prefix's or the
    system interpreter's), and the user site if it is on `sys.path`."""
    dirs = site.getsitepackages()
    if site.ENABLE_USER_SITE and site.getusersitepackages() in sys.path:
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if os.path.isdir(d)]


def test_an_installed_wheel_loads_the_zoo_offline(tmp_path):
    # Built from a copy of the sources: setuptools reuses a checkout's build/,
    # which may hold files of an older layout.
    source = tmp_path / "source"
    for name in ("keras_vae", "zoo"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels),
         str(source)],
        check=True, timeout=600,
    )
    (wheel,) = wheels.glob("keras_vae-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # the entries mapped into the package, checksums and all
        assert "keras_vae/zoo_entries/vq_vae_mnist/model.weights.h5" in archive.namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=600)
    # TensorFlow and the other dependencies come from the environment running
    # these tests, whatever kind it is: its site-packages go on the new venv's
    # path through a .pth file, after the venv's own site-packages, so
    # keras_vae itself comes from the wheel (checked below). `venv
    # --system-site-packages` would expose the base interpreter's packages
    # instead, which a virtual environment does not have.
    inner_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                check=True, capture_output=True, text=True).stdout.strip()
    pathlib.Path(inner_site, "outer_environment.pth").write_text("".join(d + "\n" for d in _site_dirs()))
    check = textwrap.dedent(
        f"""
        import os, keras_vae
        assert keras_vae.__file__.startswith({str(venv)!r}), keras_vae.__file__
        assert keras_vae.zoo.ROOT == os.path.join(os.path.dirname(keras_vae.__file__), "zoo_entries")
        model = keras_vae.zoo.load("vq_vae_mnist")
        images = model.sample(4, seed=0)
        assert images.shape == (4, 28, 28, 1)
        print("sampled", float(images.numpy().mean()))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run([python, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = keras_vae.zoo.load("vq_vae_mnist").sample(4, seed=0).numpy().mean()
    assert float(run.stdout.split()[-1]) == pytest.approx(float(expected), rel=1e-5)


def test_a_checkout_reads_the_top_level_zoo_folder():
    """From a checkout or an editable install the entries are `zoo/<name>/`,
    the folders the README and the training scripts name."""
    if not keras_vae.__file__.startswith(REPO + os.sep):
        pytest.skip(f"keras_vae is imported from {keras_vae.__file__}, not from this checkout")
    assert zoo.ROOT == os.path.join(REPO, "zoo")
    assert not os.path.exists(os.path.join(REPO, "keras_vae", "zoo_entries"))  # mapped at build time, not copied
    from keras_vae import quality

    beside = {os.path.basename(quality.classifier_dir(d)) for d in quality.CLASSIFIERS}  # feature classifiers
    folders = sorted(n for n in os.listdir(zoo.ROOT) if os.path.isdir(os.path.join(zoo.ROOT, n)))
    assert zoo.names() == [n for n in folders if n not in beside] and beside <= set(folders)


def test_readme_and_card_links_resolve():
    cards = [os.path.join(REPO, "README.md"), os.path.join(zoo.ROOT, "README.md")]
    cards += [os.path.join(zoo.entry_dir(name), "README.md") for name in zoo.names()]
    for card in cards:
        text = open(card).read()
        links = [link for link in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in link and not link.startswith("#")]
        assert links, card  # every one links its entries or images
        for link in links:
            assert os.path.exists(os.path.join(os.path.dirname(card), link.split("#")[0])), f"{card}: {link}"


# ---------------------------------------------------------------------------
# Shipped numbers, re-measured.
#
# Each entry's `metrics.json` holds a CI value measured by its training script
# on the first 1,000 test images. Recomputed here from the shipped weights it
# is deterministic, so it must agree to float rounding; weights from another
# run, epoch or seed, an untrained prior or a corrupted layer move it by far
# more. A second check ties that subset to the card's full-test-set number:
# the subset mean must lie within 4 standard errors of it (plus, for the k=50
# bound, its looseness). The first 1,000 MNIST test images are not a random
# sample (the first half of the test set comes from NIST's cleaner writers),
# so this bound is a sanity check that held for every shipped entry when it
# was written, not a sampling guarantee.
# ---------------------------------------------------------------------------


def _within(values, card_value, what, floor=1e-3):
    values = np.asarray(values, "float64")
    tolerance = 4 * values.std(ddof=1) / np.sqrt(len(values)) + floor
    assert abs(values.mean() - card_value) <= tolerance, (
        f"{what}: {values.mean():.5f} on the first {len(values)} test images, card says {card_value:.5f} "
        f"(tolerance {tolerance:.5f})"
    )


def test_vq_vae_mnist_matches_its_card(tfds_dir, manual_dirs):
    card = json.load(open(os.path.join(zoo.entry_dir("vq_vae_mnist"), "metrics.json")))["metrics"]
    model = zoo.load("vq_vae_mnist")
    ds = data.load_dataset("mnist", split="test", batch_size=500, binarize=None, shuffle=False,
                           data_dir=str(tfds_dir), manual_dir=str(manual_dirs["mnist"]),
                           num_examples=card["check_examples"])
    x = np.concatenate([b.numpy() for b in ds])
    assert len(x) == card["check_examples"]
    mse = ((model.reconstruct(x).numpy() - x) ** 2).mean(axis=(1, 2, 3)) / card["train_pixel_variance"]
    codes = model.code_maps(x)
    nats = -model.pixelcnn.log_prob(codes).numpy() / codes[0].size
    # Another CPU's kernels change these means in the 6th digit or later.
    assert mse.mean() == pytest.approx(card["check_mse_over_variance"], rel=1e-3)
    assert nats.mean() == pytest.approx(card["check_prior_nats_per_code"], rel=1e-3)
    _within(mse, card["test_mse_over_variance"], "reconstruction MSE / variance")
    _within(nats, card["prior_test_nats_per_code"], "prior cross-entropy (nats per code)")


def _record(name):
    with open(os.path.join(zoo.entry_dir(name), "metrics.json")) as f:
        return json.load(f)


def _check_images(record, tfds_dir, manual_dirs):
    """The test images an entry's CI value was measured on: the first
    `check_examples`, binarized once with seed 0 (or, for an 8-bit entry,
    their integer values), as `scripts/train_zoo.py` did."""
    values = record.get("values", "unit")
    return data.load_dataset(
        record["dataset"], split="test", batch_size=100, binarize="static" if values == "unit" else None,
        values=values, shuffle=False, seed=0,
        data_dir=str(tfds_dir), manual_dir=str(manual_dirs[record["dataset"]]),
        num_examples=record["metrics"]["check_examples"],
    )


@pytest.mark.parametrize("name", [n for n in zoo.names() if "check_nll" in _record(n)["metrics"]])
def test_likelihood_entries_match_their_cards(name, tfds_dir, manual_dirs):
    """The card's CI value is the k=50 bound on the first 1,000 test images,
    binarized once (seed 0), noise seed 0: recomputed here from the shipped
    weights it differs only by float rounding (0.05 nats allows for another
    CPU's kernels), while weights from another run or epoch move it by far
    more. Its distance to the full-test-set k=5000 number is bounded as the
    header above says, plus the k=50 bound's looseness (it is never tighter
    than k=5000 in expectation; 3 nats allows for it)."""
    record = _record(name)
    card = record["metrics"]
    model = zoo.load(name)
    ds = _check_images(record, tfds_dir, manual_dirs)
    nll = -model.log_likelihood(ds, num_samples=card["check_k"], seed=0)
    assert nll.mean() == pytest.approx(card["check_nll"], abs=0.05)
    standard_error = nll.std(ddof=1) / np.sqrt(len(nll))
    assert card["test_nll"] - 4 * standard_error <= nll.mean() <= card["test_nll"] + 4 * standard_error + 3.0


def test_paired_nll_comparison():
    result = compare_nll.compare(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0]))
    assert result["difference"] == pytest.approx(0.5)
    assert result["standard_error"] == pytest.approx(np.sqrt(5 / 3) / 2)  # sample std of (-1, 0, 1, 2) / sqrt(4)
    assert result["first_better"] == 0.25 and result["images"] == 4
    with pytest.raises(ValueError, match="different numbers of images: 4 and 3"):
        compare_nll.compare(np.zeros(4), np.zeros(3))


def test_paired_nll_comparison_of_the_first_images(tmp_path, capsys):
    """`--examples N` pairs a run scored on N images with the first N of a
    run scored on more, from the score files `train_zoo.py` writes."""
    for name, log_likelihood in (("short", [-1.0, -2.0]), ("long", [-2.0, -2.0, -9.0])):
        os.makedirs(tmp_path / name)
        np.savez(tmp_path / name / "scores_k5000.npz", batches=1, log_likelihood=np.array(log_likelihood),
                 elbo=np.array(log_likelihood))
    compare_nll.main([str(tmp_path / "short"), str(tmp_path / "long"), "--examples", "2"])
    assert "difference (first - second): -0.50 ± 0.50 nats" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--examples 3 but .*short.* holds 2 images"):
        compare_nll.main([str(tmp_path / "short"), str(tmp_path / "long"), "--examples", "3"])


def test_active_units_match_the_card(tfds_dir, manual_dirs):
    """`scripts/active_units.py` counts units whose posterior mean varies
    over the test set; the shipped `vae_mnist` weights give the card's count."""
    means = np.stack([np.linspace(-1, 1, 100), np.full(100, 3.0), np.linspace(0, 0.3, 100)], axis=1)
    count, variances = active_units.active_units(means)  # variances 0.34, 0, 0.0077
    assert count == 1 and variances[0] == pytest.approx(np.var(np.linspace(-1, 1, 100)))

    card = open(os.path.join(zoo.entry_dir("vae_mnist"), "README.md")).read()
    stated = int(re.search(r"(\d+) of the 50 latent units are active", card).group(1))
    data_args = ["--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"])]
    assert active_units.main(["vae_mnist", *data_args]) == {"vae_mnist": stated}
    with pytest.raises(SystemExit, match="ae_mnist has no Gaussian posterior"):
        active_units.main(["ae_mnist", *data_args])


def test_binarization_entropy_is_the_sum_of_bernoulli_entropies():
    import tensorflow_probability as tfp

    p = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype("float32")
    p[0, :2, 0, 0] = (0.0, 1.0)  # 0 ln 0 = 0
    expected = tfp.distributions.Bernoulli(probs=p.astype("float64")).entropy().numpy().reshape(3, -1).sum(1)
    np.testing.assert_allclose(binarization_entropy.binarization_entropy(p), expected, rtol=1e-6)  # TFP answers in float32
    assert binarization_entropy.binarization_entropy(np.full((1, 4), 0.5)) == pytest.approx([4 * np.log(2)])


@functools.lru_cache
def _test_set_binarization_entropy(dataset, tfds_dir, manual_dir):
    ds = data.load_dataset(dataset, split="test", batch_size=1000, shuffle=False, data_dir=tfds_dir,
                           manual_dir=manual_dir)
    return np.concatenate([binarization_entropy.binarization_entropy(x) for x in ds.as_numpy_iterator()])


@pytest.mark.parametrize("name", [n for n in zoo.names() if "check_nll" in _record(n)["metrics"]
                                  and _record(n).get("values", "unit") == "unit"])  # binarized data
def test_card_nlls_lie_above_the_binarization_noise(name, tfds_dir, manual_dirs):
    """No model predicts the Bernoulli noise a binarization adds: for every
    grey image the expected NLL of its draws is at least their entropy
    (Gibbs' inequality), `scripts/binarization_entropy.py`. Unlike the checks
    above, which compare the estimator with itself, this catches an NLL that
    came out too good. The cards' NLLs are from one draw per image, so the
    bound holds up to that draw's sampling error (under a nat here); every
    shipped entry clears it by more than 30 nats."""
    record = _record(name)
    card = record["metrics"]
    entropy = _test_set_binarization_entropy(record["dataset"], str(tfds_dir), str(manual_dirs[record["dataset"]]))
    assert len(entropy) == card["eval_examples"] == 10000
    assert card["test_nll"] > entropy.mean() + 1.0
    assert card["check_nll"] > entropy[: card["check_examples"]].mean() + 1.0


@pytest.mark.parametrize("name", [n for n in zoo.names() if "check_reconstruction_loss" in _record(n)["metrics"]])
def test_autoencoder_entries_match_their_cards(name, tfds_dir, manual_dirs):
    """As above, for entries without a density (AE): the reconstruction loss
    on the first 1,000 test images (binarized once, seed 0) is deterministic,
    so the shipped weights must reproduce it to float rounding; and it is
    within 4 standard errors of the full test set's (see the header above)."""
    record = _record(name)
    card = record["metrics"]
    model = zoo.load(name)
    ds = _check_images(record, tfds_dir, manual_dirs)
    losses = np.concatenate([-model.decode(model.latent(x)).log_prob(x).numpy() for x in ds])
    assert losses.mean() == pytest.approx(card["check_reconstruction_loss"], abs=0.05)
    _within(losses, card["test_reconstruction_loss"], "reconstruction loss", floor=0.0)


@pytest.mark.parametrize("name", [n for n in zoo.names() if "check_mig" in _record(n)["metrics"]])
def test_disentanglement_entries_match_their_cards(name):
    """The sprites entries: the posterior mean's reconstruction loss on the
    first 1,000 evaluation images and MIG with 1,000 points (both
    deterministic given the seeds) from the shipped weights, as
    `scripts/zoo_sprites.py` recorded them."""
    import zoo_sprites

    card = _record(name)["metrics"]
    loss, mig = zoo_sprites.check_values(zoo.load(name))
    assert loss == pytest.approx(card["check_sprites_reconstruction_loss"], abs=0.05)
    assert mig == pytest.approx(card["check_mig"], abs=1e-3)


def test_data_output_bias_starts_the_decoder_at_the_mean_image(tfds_dir, manual_dirs):
    """`scripts/train_zoo.py --output-bias data` (Burda et al.'s start): an
    untrained Bernoulli decoder then predicts each pixel's mean grey value
    instead of 0.5, so the reconstruction loss of real test images starts far
    below 784 ln 2 = 543 nats. Models without one bias per pixel are refused."""
    import train_zoo

    args = train_zoo.parse_args(["vae_mnist", "--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"])])
    assert args.output_bias == "data"  # the shipped entry's recipe; others start at Keras' zeros
    assert train_zoo.parse_args(["conv_vae_mnist"]).output_bias == "zeros"
    recipe = train_zoo.RECIPES["vae_mnist"]
    grey = np.concatenate(list(
        train_zoo.dataset(args, recipe, "train", training=False, batch_size=10000, grey=True).as_numpy_iterator()))
    test = train_zoo.dataset(args, recipe, "test", training=False, num_examples=500, batch_size=100)
    model = recipe["model"]()
    before = train_zoo.reconstruction_losses(model, test).mean()
    train_zoo.initialize_output_bias(model, [grey[:25000], grey[25000:]])
    bias = model.decoder.get_layer("params").bias.numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-bias)), np.clip(grey.mean(0, dtype="float64").reshape(-1), 1e-3, 1 - 1e-3),
                               atol=1e-6)
    after = train_zoo.reconstruction_losses(model, test).mean()
    assert before == pytest.approx(784 * np.log(2), abs=5.0) and after < 250.0, (before, after)

    with pytest.raises(ValueError, match=r"one output bias per pixel \(\(784,\)\).*Received: a bias of shape \(1,\)"):
        train_zoo.initialize_output_bias(train_zoo.RECIPES["conv_vae_mnist"]["model"](), [grey[:10]])


def test_the_8bit_recipe_reads_the_integer_pixels(tfds_dir, manual_dirs):
    """`conv_vae_fashion_mnist_8bit` trains and scores on Fashion-MNIST's
    8-bit values as they are: the test images in order, equal to TFDS's own
    uint8 pixels; training images shuffled, from `--train-examples` only."""
    import train_zoo

    args = train_zoo.parse_args(["conv_vae_fashion_mnist_8bit", "--train-examples", "300", "--data-dir",
                                 str(tfds_dir), "--manual-dir", str(manual_dirs["fashion_mnist"])])
    recipe = train_zoo.RECIPES["conv_vae_fashion_mnist_8bit"]
    test = np.concatenate(list(train_zoo.dataset(args, recipe, "test", training=False, num_examples=200,
                                                 batch_size=100).as_numpy_iterator()))
    raw = data.load_dataset("fashion_mnist", split="test", batch_size=200, values="8bit", shuffle=False,
                            data_dir=str(tfds_dir), manual_dir=str(manual_dirs["fashion_mnist"]), num_examples=200)
    np.testing.assert_array_equal(test, next(iter(raw)).numpy())
    assert test.dtype == np.float32 and test.max() > 200 and np.all(test == np.round(test))
    train = list(train_zoo.dataset(args, recipe, "train", training=True).as_numpy_iterator())
    assert sum(len(x) for x in train) == 300 // args.batch_size * args.batch_size  # incomplete batch dropped
    assert recipe["model"]().likelihood.values == "8bit"
