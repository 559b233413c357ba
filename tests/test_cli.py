"""The `keras-vae` command, run as a real subprocess on real MNIST (error paths
that read no data also in-process, through `cli.main`)."""

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import keras
import matplotlib.image
import pytest
import tensorflow as tf

import keras_vae  # noqa: F401 - registers the classes for load_model
from keras_vae import cli


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_vae.cli", *map(str, args)],
        capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def trained(tfds_dir, manual_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run("train", "conv_vae", "--dataset", "mnist", "--epochs", 2, "--train-examples", 512,
                 "--batch-size", 64, "--latent-dim", 4, "--filters", "8,16", "--network", "residual",
                 "--blocks-per-stage", 1, "--dense-units", 12, "--kl-warmup-steps", 4, "--free-bits", 0.1,
                 "--posterior", "iaf",
                 "--prior", "vamp", "--optimizer", "adamax", "--ema-momentum", 0.9, "--output-dir", out,
                 "--tensorboard", out / "logs", "--data-dir", tfds_dir, "--manual-dir", manual_dirs["mnist"])
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_train_writes_model_history_and_plots(trained):
    out, result = trained
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("conv_vae on mnist: 2 epochs") and "test loss" in summary
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]["loss"]) == 2 and "val_elbo" in history["history"]
    model = keras.models.load_model(out / "model.keras")
    assert type(model).__name__ == "ConvVAE" and model.latent_dim == 4 and model.filters == (8, 16)
    assert (model.network, model.blocks_per_stage, model.weight_norm, model.dense_units) == ("residual", 1, True, (12,))
    assert (model.kl_warmup_steps, model.free_bits) == (4, 0.1)
    # --dtype auto (the default): ConvVAE's measured precision for this machine, saved with the model.
    assert model.dtype_policy.name == ("mixed_bfloat16" if keras_vae.precision.bfloat16_pays() else "float32")
    assert (type(model.posterior_layer).__name__, type(model.prior_layer).__name__) == ("IAF", "VampPrior")
    assert (type(model.optimizer).__name__, model.optimizer.use_ema, model.optimizer.ema_momentum) == ("Adamax", True, 0.9)
    for name in ("samples", "reconstructions", "interpolations"):
        image = matplotlib.image.imread(out / f"{name}.png")
        assert image.ndim == 3 and min(image.shape[:2]) > 50
    assert not [p for p in os.listdir(out) if "partial" in p or p.startswith("tmp")]
    tags = {}
    for run_name in ("train", "validation", "images"):  # Keras' scalars and ImageSummaries' pictures
        for path in (out / "logs" / run_name).iterdir():
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                tags.update({(run_name, value.tag): event.step for value in event.summary.value})
    assert {("train", "epoch_loss"), ("validation", "epoch_elbo")} <= set(tags)
    assert {tag: step for (run_name, tag), step in tags.items() if run_name == "images"} == {
        "samples": 1, "reconstructions": 1, "traversal": 1}  # the last of epochs 0 and 1


def test_sample_and_evaluate_a_saved_model(trained, tmp_path, tfds_dir, manual_dirs, capsys):
    out, _ = trained
    # Refusals in-process (a real process's exit status and console are checked below).
    assert cli.main(["sample", str(out / "model.keras"), "--temperature", "0.5"]) == 2
    assert "`--temperature` applies to vq_vae. Received it for: ConvVAE" in capsys.readouterr().err
    assert cli.main(["train-prior", str(out / "model.keras")]) == 2
    assert "`model_path` must hold a model with a learned prior (vq_vae)" in capsys.readouterr().err
    assert cli.main(["sample", str(out / "model.keras"), "--dataset", "mnist"]) == 2
    assert ("`--dataset` applies to `sample --sampler gmm` (the training images whose codes it fits); other samples "
            "read no images. Received: --dataset with --sampler (none)") in capsys.readouterr().err
    assert cli.main(["sample", str(out / "model.keras"), "--components", "3", "--sampler", "prior"]) == 2
    assert "`--components` applies to `sample --sampler gmm`" in capsys.readouterr().err
    assert cli.main(["sample", str(out / "model.keras"), "--save-model", str(tmp_path / "m.keras")]) == 2
    assert "`--save-model` writes the model with the sampler of `--sampler`" in capsys.readouterr().err
    assert cli.main(["sample", str(out / "model.keras"), "--sampler", "gmm", "--save-model", "m.h5"]) == 2
    assert "`--save-model` must be a .keras file name. Received: --save-model 'm.h5'" in capsys.readouterr().err
    assert cli.main(["sample", str(out / "model.keras"), "--sampler", "gmm", "--arrays", str(tmp_path / "a.npz")]) == 2
    assert "`--arrays` must be an array or an existing .npy / .npz file" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written by a refused command
    # A mixture fitted to the codes of the first 256 training images, saved with the model.
    with_gmm, gmm_png = tmp_path / "gmm.keras", tmp_path / "gmm.png"
    assert cli.main(["sample", str(out / "model.keras"), "--sampler", "gmm", "--components", "3", "--num-images",
                     "256", "--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"]),
                     "--save-model", str(with_gmm), "--output", str(gmm_png)]) == 0
    assert "a 3-component mixture fitted to the codes of 256 training images of mnist" in capsys.readouterr().out
    sampler = keras.models.load_model(with_gmm).sampler_layer
    assert type(sampler).__name__ == "GaussianMixtureSampler" and sampler.components == 3
    assert matplotlib.image.imread(gmm_png).shape[0] > 50
    png = tmp_path / "grid.png"
    result = run("sample", out / "model.keras", "--num", 16, "--seed", 3, "--output", png)
    assert result.returncode == 0, result.stderr[-3000:]
    assert matplotlib.image.imread(png).shape[0] > 50
    result = run("evaluate", out / "model.keras", "--data-dir", tfds_dir, "--manual-dir", manual_dirs["mnist"],
                 "--iw-samples", 10, "--split", "test[:1000]")
    assert result.returncode == 0, result.stderr[-3000:]
    logs = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"loss", "elbo", "reconstruction_loss", "kl", "nll", "bits_per_dim"} <= set(logs) and logs["elbo"] < 0
    assert logs["nll"] <= -logs["elbo"] + 1.0  # the k=10 bound is at least as tight as the ELBO, up to noise


def test_plot_writes_each_chart(trained, tmp_path, tfds_dir, manual_dirs, mnist_binary, capsys):
    """In-process through `cli.main`, on the fixture's residual IAF / VampPrior
    model (its units ranked by code variance) and on a 2-d VAE."""
    out, _ = trained
    data = ["--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"]), "--num-images", "300"]
    sizes = {}
    for kind in ("traversal", "latent-map", "kl-units"):
        png = tmp_path / f"{kind}.png"
        assert cli.main(["plot", str(out / "model.keras"), "--kind", kind, "--output", str(png), *data]) == 0
        assert f"wrote the {kind} of" in capsys.readouterr().out
        sizes[kind] = matplotlib.image.imread(png).shape[:2]
    rows, columns = 4, 9  # the fixture's 4 latent units, 9 steps, 28 x 28 images at zoom 3, a title
    assert sizes == {"traversal": (3 * (rows * 29 - 1) + 30, 3 * (columns * 29 - 1)), "latent-map": (550, 600),
                     "kl-units": (350, 400)}
    assert cli.main(["plot", str(out / "model.keras"), "--kind", "manifold", "--output", str(tmp_path / "m.png")]) == 2
    assert "needs a model with a 2-d vector latent (latent_dim=2). Received: ConvVAE" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()
    two_d = tmp_path / "vae2.keras"
    keras_vae.VAE(latent_dim=2, hidden_units=(8,), seed=0).save(two_d)
    assert cli.main(["plot", str(two_d), "--kind", "manifold", "--size", "5", "--output", str(tmp_path / "m.png")]) == 0
    assert matplotlib.image.imread(tmp_path / "m.png").shape[:2] == (318, 288)  # 5 x 29 - 1 px at zoom 2, a title
    folder = tmp_path / "flat"  # image files in no sub-folders: no labels
    folder.mkdir()
    for i, image in enumerate(mnist_binary[:40]):
        keras.utils.save_img(folder / f"{i}.png", image * 255, scale=False)
    assert cli.main(["plot", str(two_d), "--kind", "latent-map", "--images", str(folder), "--validation-split",
                     "0.5", "--output", str(tmp_path / "flat.png")]) == 0
    assert "flat has no labels; the codes are drawn in one colour" in capsys.readouterr().err
    assert matplotlib.image.imread(tmp_path / "flat.png").shape[:2] == (550, 600)


def test_zoo_lists_entries_and_export_writes_a_version_once(tmp_path, capsys):
    result = run("zoo")
    assert result.returncode == 0 and "\nvq_vae_mnist: VQ-VAE" in "\n" + result.stdout
    result = run("export", "vae_mnist", "--base-path", tmp_path, "--name", "vae", "--version", 3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "signatures serving_default, encode, decode, sample, score" in result.stdout
    assert (tmp_path / "vae" / "3" / "saved_model.pb").is_file()
    # In-process (the real process's exit status and console are checked above and below).
    args = ["export", "vae_mnist", "--base-path", str(tmp_path), "--name", "vae", "--version", "3"]
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert "`version` 3 already exists" in error and "--overwrite" in error
    assert cli.main([*args, "--overwrite"]) == 0
    assert os.listdir(tmp_path / "vae") == ["3"]


@pytest.mark.parametrize("args, message", [
    (["train", "conv_ae", "--beta", "2"], "`--beta` applies to beta_vae, conv_vae, beta_tcvae, vq_vae. Received it"),
    (["train", "vae", "--alpha", "2"], "`--alpha` applies to beta_tcvae. Received it for: vae"),
    (["train", "beta_tcvae", "--estimator", "exact"], "argument --estimator: invalid choice: 'exact'"),
    (["train", "dip_vae", "--lambda-od", "-1"], "argument --lambda-od: must be a finite number >= 0"),
    (["train", "factor_vae", "--dataset", "sprites", "--train-examples", "640"],
     "`--train-examples` does not apply to --dataset sprites (the grid's first images in index order are all small "
     "squares); shorten a run with --steps-per-epoch. Received: --train-examples 640"),
    (["train", "factor_vae", "--dataset", "sprites", "--image-size", "32"],
     "`--image-size` does not apply to --dataset sprites: its images are 64x64 and binary. Received: --image-size 32"),
    (["train", "conv_vae", "--dataset", "sprites", "--likelihood", "discretized_logistic"],
     "`--likelihood` must model binary or [0, 1] pixels for --dataset sprites"),
    (["train", "vae", "--steps-per-epoch", "0"], "argument --steps-per-epoch: must be a positive integer"),
    (["train", "vae", "--latent-dim", "0"], "argument --latent-dim: must be a positive integer; received '0'"),
    (["sample", "missing.keras"], "`model_path` must be an existing .keras file or a zoo entry ("),
    (["export", "vq_vae_mnist", "--base-path", "x", "--version", "0"], "argument --version: must be a positive integer"),
    (["sample", "vq_vae_mnist", "--num", "0"], "argument --num: must be a positive integer; received '0'"),
    (["sample", "vq_vae_mnist", "--temperature", "nan"], "argument --temperature: must be a finite number > 0"),
    (["evaluate", "vae_mnist", "--iw-samples", "-5"], "argument --iw-samples: must be a positive integer"),
    (["evaluate", "vae_mnist", "--seed", "-1"], "argument --seed: must be an integer in [0, 2147483647]; received '-1'"),
    (["train", "vae", "--binarize", "none"], "`--binarize` must be dynamic or static for the bernoulli"),
    (["train", "vq_vae", "--latent-dim", "4"], "`--latent-dim` applies to vae, beta_vae, conv_vae, ae, conv_ae"),
    (["train", "vae", "--num-codes", "4"], "`--num-codes` applies to vq_vae. Received it for: vae"),
    (["train", "vae", "--network", "residual"], "`--network` applies to conv_vae, conv_ae, beta_tcvae, factor_vae, dip_vae. Received"),
    (["train", "conv_ae", "--prior", "vamp"], "`--prior` applies to vae, beta_vae, conv_vae. Received it for: conv_ae"),
    (["train", "ae", "--free-bits", "0.5"], "`--free-bits` applies to vae, beta_vae, conv_vae. Received it for: ae"),
    (["train", "vae", "--kl-warmup-steps", "-3"], "argument --kl-warmup-steps: must be an integer >= 0; received '-3'"),
    (["train", "conv_vae", "--blocks-per-stage", "0"], "argument --blocks-per-stage: must be a positive integer"),
    (["train", "vae", "--epochs", "0"], "argument --epochs: must be a positive integer; received '0'"),
    (["train", "vae", "--posterior", "flow"], "argument --posterior: invalid choice: 'flow' (choose from"),
    (["train", "ae", "--prior", "vamp"], "`--prior` applies to vae, beta_vae, conv_vae. Received it for: ae"),
    (["train", "beta_vae", "--objective", "iwae"], "`--objective` applies to vae, conv_vae. Received it for: beta_vae"),
    (["train", "vae", "--ema-momentum", "1.5"], "argument --ema-momentum: must be a number in (0, 1); received '1.5'"),
    (["train", "vae", "--objective", "iwae_dreg", "--posterior", "iaf"], "`objective='iwae_dreg'` needs a diagonal"),
    (["train", "vae", "--batch-size", "ten"], "argument --batch-size: must be a positive integer; received 'ten'"),
    (["train-prior", "missing.keras", "--output", "x.h5"], "`--output` must be a .keras file name"),
    (["train-prior", "vq_vae_mnist"], "`--output` (a .keras file name) is needed when `model_path` is not a .keras"),
    (["train", "vae", "--train-examples", "100"], "`--train-examples` must be at least `--batch-size` (incomplete"),
    (["train", "vae", "--learning-rate", "0"], "argument --learning-rate: must be a finite number > 0; received '0'"),
    (["export", "ae_mnist", "--base-path", "/dev/null/serving"], "keras-vae export: error: [Errno 20] Not a directory"),
])
def test_bad_arguments_exit_2_with_a_message(args, message, tfds_dir, manual_dirs, capsys):
    """Run in-process through `cli.main` (an uncaught exception fails the
    test); the real process's exit status and console are checked below."""
    if args[0].startswith("train"):
        args = [*args, "--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"])]
    try:
        status = cli.main(args)
    except SystemExit as exit:  # argparse's errors
        status = exit.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_a_bad_argument_exits_2_with_one_line_and_no_traceback():
    for args, message in (["train", "vae", "--latent-dim", "0"], "argument --latent-dim: must be a positive integer"), \
                         (["sample", "missing.keras"], "`model_path` must be an existing .keras file or a zoo entry"):
        result = run(*args)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr and not result.stdout


def _damaged(good, damage):
    if damage == "junk":
        return b"not a keras archive " * 100
    if damage == "truncated":
        return good[: len(good) // 2]
    content = bytearray(good)  # the archive's index intact, one stored byte of the weights changed
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        info = archive.getinfo("model.weights.h5")
    content[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    return bytes(content)


@pytest.mark.parametrize("damage", ["junk", "truncated", "flipped"])
def test_a_damaged_keras_file_is_named(trained, tmp_path, capsys, damage):
    """Keras says "File not found" for a file that exists but is not a
    readable archive; every command that reads one says what is wrong."""
    out, _ = trained
    bad = tmp_path / "model.keras"
    bad.write_bytes(_damaged((out / "model.keras").read_bytes(), damage))
    serving = tmp_path / "serving"
    for command in (["sample", bad, "--output", tmp_path / "grid.png"], ["evaluate", bad],
                    ["export", bad, "--base-path", serving], ["train-prior", bad]):
        assert cli.main([str(a) for a in command]) == 2, command
        stderr = capsys.readouterr().err
        assert f"`model_path` exists but is not a readable .keras archive (corrupted or truncated): {bad}" in stderr
        assert "File not found" not in stderr
    assert not serving.exists() and not (tmp_path / "grid.png").exists()


def test_the_console_holds_no_spurious_lines(tfds_dir, manual_dirs, tmp_path):
    """`keras-vae train` started as a user starts it (the installed console
    script, TF_CPP_MIN_LOG_LEVEL unset) prints neither Keras' warning that
    it ignores `shuffle=True` for a dataset nor TensorFlow's C++ INFO line
    on TFRecord buffer sizes. With the level set to 0 by the user, the INFO
    line is there: the check can fail, and the user's setting wins. No
    TensorFlow warning about a partly read cache either (at any level)."""
    command = os.path.join(sysconfig.get_path("scripts"), "keras-vae")
    command = command if os.path.isfile(command) else shutil.which("keras-vae")
    assert command, "the keras-vae console script is not installed (pip install -e .)"
    args = [command, "train", "vae", "--epochs", "1", "--train-examples", "256", "--batch-size", "64",
            "--latent-dim", "2", "--hidden-units", "16", "--output-dir", str(tmp_path),
            "--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"])]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    stderr = {}
    for level in (None, "0"):
        result = subprocess.run(args, capture_output=True, text=True, timeout=600,
                                env={**env, "TF_CPP_MIN_LOG_LEVEL": level} if level else env)
        assert result.returncode == 0, result.stderr[-3000:]
        stderr[level] = result.stderr
    assert "shuffle=True" not in stderr[None] and "tf_record_dataset_op" not in stderr[None], stderr[None]
    # Nor TensorFlow's warning that a cache was read only partly (TFDS's auto-cache under --train-examples).
    assert "did not fully read the dataset being cached" not in stderr["0"], stderr["0"]
    assert "tf_record_dataset_op" in stderr["0"] and "shuffle=True" not in stderr["0"]


def test_a_disentangled_model_trains_on_sprites_for_the_steps_asked_then_is_measured(tmp_path, capsys):
    """`--steps-per-epoch` 3 is not a multiple of the automatic
    steps_per_execution: exactly 3 steps an epoch must still run."""
    result = run("train", "factor_vae", "--dataset", "sprites", "--epochs", 2, "--steps-per-epoch", 3,
                 "--batch-size", 16, "--latent-dim", 4, "--filters", "8,8,16,16", "--discriminator-units", "16,16",
                 "--gamma", 20, "--output-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    model = keras.models.load_model(tmp_path / "model.keras")
    assert type(model).__name__ == "FactorVAE" and (model.latent_dim, model.penalty_layer.gamma) == (4, 20.0)
    assert model.penalty_layer.hidden_units == (16, 16)
    assert model.data_shape == (64, 64, 1) and int(model.optimizer.iterations) == 6
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert len(history["loss"]) == 2 and {"discriminator_loss", "val_elbo"} <= set(history)
    assert (tmp_path / "samples.png").exists()
    path = str(tmp_path / "model.keras")
    # In-process; the evaluation draw is fixed, so two evaluations agree.
    assert cli.main(["evaluate", path, "--dataset", "sprites", "--batch-size", "100"]) == 0
    assert cli.main(["evaluate", path, "--dataset", "sprites", "--batch-size", "100"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines()[-2:])
    assert first == second and first["dataset"] == "sprites" and first["elbo"] < 0
    png = tmp_path / "traversal.png"
    assert cli.main(["plot", path, "--kind", "traversal", "--dataset", "sprites", "--num-images", "10",
                     "--output", str(png)]) == 0
    assert matplotlib.image.imread(png).shape[:2] == (3 * (4 * 65 - 1) + 30, 3 * (9 * 65 - 1))  # 4 units, 9 steps, zoom 3
    assert cli.main(["disentanglement", path, "--metrics", "mig", "--num-train", "200"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mig"]["discrete_mig"] <= 1


def test_vq_vae_trains_then_its_prior_then_samples(tfds_dir, manual_dirs, tmp_path):
    data = ["--data-dir", tfds_dir, "--manual-dir", manual_dirs["mnist"], "--train-examples", 256, "--batch-size", 64]
    result = run("train", "vq_vae", "--epochs", 1, "--num-codes", 16, "--code-dim", 4, "--filters", "8,16",
                 "--beta", 0.5, "--codebook-update", "ema", "--dead-code-steps", 4, "--prior-filters", 8,
                 "--prior-layers", 3, "--likelihood-scale", 0.22, "--output-dir", tmp_path, *data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no prior yet, so no samples: keras-vae train-prior" in result.stdout
    model = keras.models.load_model(tmp_path / "model.keras")
    assert (model.num_codes, model.quantizer.code_dim, model.quantizer.beta) == (16, 4, 0.5)
    assert model.quantizer.codebook_update == "ema" and model.pixelcnn.filters == 8
    assert {"perplexity", "codebook_usage"} <= set(json.loads((tmp_path / "history.json").read_text())["history"])
    assert not (tmp_path / "samples.png").exists()

    result = run("sample", tmp_path / "model.keras", "--output", tmp_path / "grid.png")
    assert result.returncode == 2 and "keras-vae train-prior MODEL.keras" in result.stderr
    assert not (tmp_path / "grid.png").exists()

    with_prior = tmp_path / "prior" / "model.keras"
    with_prior.parent.mkdir()
    result = run("train-prior", tmp_path / "model.keras", "--epochs", 1, "--output", with_prior, *data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nats per code" in result.stdout and (with_prior.parent / "samples.png").exists()
    assert keras.models.load_model(with_prior).pixelcnn.trained_steps == 4

    result = run("sample", with_prior, "--num", 9, "--temperature", 0.8, "--output", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr[-3000:]
    assert matplotlib.image.imread(tmp_path / "grid.png").shape[0] > 50

