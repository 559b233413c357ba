"""Training across worker processes with `MultiWorkerMirroredStrategy`, and
surviving a killed worker: real processes on localhost ports, each with its
own `TF_CONFIG`, running the `keras-vae` command on real MNIST.

Tolerance against one process: the two workers split each global batch of
128 into halves and all-reduce their gradients; one process sums the same
128 rows in one pass. The summation order differs, so float32 rounding
(~1e-7 relative per step) compounds over the steps; 1e-5 absolute (plus
1e-5 relative, for the VQ-VAE's EMA sums over whole batches of encodings)
on every weight is far below what a fault moves. The `vae` runs train with
SGD, whose step is the learning rate (1e-3) times the gradient itself, so a
gradient that is not the mean over the global batch (a missing or doubled
replica scaling, one worker's half only, other data or noise) moves weights
by far more than 1e-5; Adam (the `vq_vae` run) would hide a uniform scaling
error, since its step does not depend on the gradient's scale.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_vae  # noqa: F401 - registers the classes for load_model
from keras_vae import callbacks, cli, distribute, files

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "scripts"))
import local_cluster  # noqa: E402

EXAMPLES, BATCH = 1280, 128  # 10 steps per epoch
TOLERANCE = 1e-5


def _train_args(model, out, tfds_dir, manual_dirs, epochs, *extra):
    return ["train", model, "--epochs", str(epochs), "--train-examples", str(EXAMPLES), "--batch-size", str(BATCH),
            "--output-dir", str(out), "--data-dir", str(tfds_dir), "--manual-dir", str(manual_dirs["mnist"]), *extra]


def _command(args):
    return [sys.executable, "-m", "keras_vae.cli", *args, "--strategy", "multi_worker"]


def _cluster(args, log_dir, env=None, timeout=600):
    """Runs `keras-vae ARGS --strategy multi_worker` on two local workers; returns their logs."""
    code = local_cluster.wait(local_cluster.start_workers(_command(args), 2, log_dir=log_dir, env=env), timeout=timeout)
    logs = [(log_dir / f"worker-{i}.log").read_text() for i in range(2)]
    assert code == 0, logs[0][-3000:] + logs[1][-3000:]
    return logs


def _fingerprint(log):
    return re.findall(r"weights sha256 ([0-9a-f]{64})", log)[-1]


def _assert_same_weights(a, b):
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]  # names differ in-process
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=TOLERANCE, atol=TOLERANCE, err_msg=x.path)


@pytest.mark.parametrize("model,extra", [
    # Flow posterior, encoder-run prior, on images from an arrays file (the
    # `from_arrays` source, sharded like TFDS ones, dynamically binarized).
    ("vae", ["--optimizer", "sgd", "--posterior", "iaf", "--prior", "vamp", "--likelihood", "bernoulli",
             "--arrays", "{arrays}"]),
    ("vq_vae", ["--codebook-update", "ema"]),
])
def test_two_workers_train_as_one_process(model, extra, tmp_path, tfds_dir, manual_dirs):
    if "{arrays}" in extra:  # 2,000 real MNIST training images as uint8 arrays: 1,800 train, 200 held out
        images = next(iter(keras_vae.data.load_dataset(
            "mnist", split="train[:2000]", batch_size=2000, values="8bit", shuffle=False,
            data_dir=str(tfds_dir), manual_dir=str(manual_dirs["mnist"]))))
        arrays = tmp_path / "inputs" / "mnist.npz"
        arrays.parent.mkdir()
        np.savez(arrays, images=np.asarray(images, np.uint8))
        extra = [str(arrays) if a == "{arrays}" else a for a in extra]
    scratch = tmp_path / "tmp"  # the workers' temporary folder
    scratch.mkdir()
    logs = _cluster(_train_args(model, tmp_path / "cluster", tfds_dir, manual_dirs, 2, *extra), tmp_path / "logs",
                    env={"TMPDIR": str(scratch)})
    # Both workers finish with bit-identical weights; only the chief kept
    # results (the other saved into a temporary folder, since removed).
    assert "worker finished 20 steps" in logs[1]
    assert _fingerprint(logs[0]) == _fingerprint(logs[1])
    assert sorted(set(os.listdir(tmp_path)) - {"inputs"}) == ["cluster", "logs", "tmp"]
    assert not [name for name in os.listdir(scratch) if name.startswith("keras_vae-worker-")]
    cluster_model = keras.models.load_model(tmp_path / "cluster" / "model.keras")
    assert files.weights_fingerprint(cluster_model) == _fingerprint(logs[0])
    history = json.loads((tmp_path / "cluster" / "history.json").read_text())
    assert history["steps"] == 20 and len(history["history"]["loss"]) == 2

    # One process, same global batch and seed (XLA off, as under several replicas).
    args = _train_args(model, tmp_path / "single", tfds_dir, manual_dirs, 2, *extra, "--jit-compile", "false")
    assert cli.main(args) == 0
    single = keras.models.load_model(tmp_path / "single" / "model.keras")
    assert int(single.optimizer.iterations.numpy()) == 20
    _assert_same_weights(cluster_model, single)
    # The logged metrics are means over the whole global batch, as on one process.
    np.testing.assert_allclose(history["history"]["loss"], json.loads(
        (tmp_path / "single" / "history.json").read_text())["history"]["loss"], rtol=1e-4)


def test_killed_worker_resumes_from_backup(tmp_path, tfds_dir, manual_dirs):
    """SIGKILL one worker in the middle of an epoch (of 4); the other fails (its
    collective has lost a peer), as a cluster manager would see it; the same
    command restarted on both resumes after the last backup and ends with 4 epochs."""
    backup = tmp_path / "backup"
    scratch = tmp_path / "tmp"  # the workers' temporary folder
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    args = _train_args("vae", tmp_path / "out", tfds_dir, manual_dirs, 4, "--backup-dir", str(backup))
    workers = local_cluster.start_workers(_command(args), 2, log_dir=tmp_path / "run1", env=env)
    metadata = backup / "training_metadata.json"
    deadline = time.monotonic() + 300
    while not metadata.exists():
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "no backup after epoch 1"
        time.sleep(0.05)
    time.sleep(0.5)  # into the next epoch
    workers[1].send_signal(signal.SIGKILL)
    try:
        code = workers[0].wait(timeout=120)
    except subprocess.TimeoutExpired:  # what a cluster manager does with a stuck peer
        workers[0].kill()
        code = workers[0].wait()
    assert code != 0
    restored = json.loads(metadata.read_text())
    assert restored["epoch"] in (1, 2, 3)  # killed after a backup, before the end

    logs = _cluster(args, tmp_path / "run2", env=env)
    assert f"Epoch {restored['epoch'] + 1}/4" in logs[0] and f"Epoch {restored['epoch']}/4" not in logs[0]
    assert "worker finished 40 steps" in logs[1] and _fingerprint(logs[0]) == _fingerprint(logs[1])
    assert not backup.exists()  # removed after the normal end
    model = keras.models.load_model(tmp_path / "out" / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 40
    test = keras_vae.data.load_dataset("mnist", split="test[:500]", batch_size=100, binarize="static",
                                       data_dir=str(tfds_dir), manual_dir=str(manual_dirs["mnist"]))
    logs = model.evaluate(test, return_dict=True, verbose=0)
    assert np.isfinite(logs["loss"]) and logs["loss"] < 250  # an untrained model scores ~540


_KILL_MID_WRITE = """
import os, signal, sys
import keras, keras_vae, numpy as np
from keras_vae import callbacks

model = keras_vae.VAE(latent_dim=2, hidden_units=(8,), seed=0)
model.compile()
images = (np.random.default_rng(1).random((64, 28, 28, 1)) < 0.5).astype("float32")
real_save = keras.Model.save_weights

def save_then_die(self, path, *args, **kwargs):
    if self.optimizer.iterations.numpy() > 2:  # the second epoch's backup
        with open(path, "wb") as f:
            f.write(b"\\x89HDF\\r\\n\\x1a\\n" + b"\\0" * 100)  # a truncated file, then SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(self, path, *args, **kwargs)

keras.Model.save_weights = save_then_die
model.fit(images, batch_size=32, epochs=3, verbose=0, callbacks=[callbacks.BackupAndRestore(sys.argv[1])])
"""


def test_backup_killed_mid_write_restores_the_previous_epoch(tmp_path):
    backup = tmp_path / "backup"
    result = subprocess.run([sys.executable, "-c", _KILL_MID_WRITE, str(backup)], capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert json.loads((backup / "training_metadata.json").read_text()) == {
        "epoch": 1, "weights": "epoch-1.weights.h5"}
    assert [p for p in os.listdir(backup) if p.startswith(".partial-")]  # the debris of the kill

    model = keras_vae.VAE(latent_dim=2, hidden_units=(8,), seed=0)
    model.compile()
    images = (np.random.default_rng(1).random((64, 28, 28, 1)) < 0.5).astype("float32")
    history = model.fit(images, batch_size=32, epochs=3, verbose=0,
                        callbacks=[callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    assert history.epoch == [1, 2] and int(model.optimizer.iterations.numpy()) == 6
    assert sorted(os.listdir(backup)) == ["epoch-3.weights.h5", "training_metadata.json"]


def test_backup_and_restore_lifecycle(tmp_path):
    with pytest.raises(ValueError, match="`backup_dir` must be a folder path .*Received: backup_dir='gs://b/run'"):
        callbacks.BackupAndRestore("gs://b/run")
    model = keras_vae.VAE(latent_dim=2, hidden_units=(8,), seed=0)
    model.compile()
    images = (np.random.default_rng(1).random((64, 28, 28, 1)) < 0.5).astype("float32")

    def fit(backup, **kwargs):
        return model.fit(images, batch_size=32, epochs=2, verbose=0,
                         callbacks=[callbacks.BackupAndRestore(backup, **kwargs)]).epoch

    assert fit(tmp_path / "a") == [0, 1] and not (tmp_path / "a").exists()  # removed at the normal end
    assert fit(tmp_path / "a") == [0, 1]  # a later fit starts afresh
    assert fit(tmp_path / "b", delete_checkpoint=False) == [0, 1]
    # Every epoch already backed up: nothing runs, and the backup stays (a
    # worker of the same cluster may not have restored it yet).
    assert fit(tmp_path / "b") == [] and (tmp_path / "b" / "epoch-2.weights.h5").exists()
    callbacks.BackupAndRestore(tmp_path / "b").remove_backup()
    assert not (tmp_path / "b").exists()


def test_tf_config_errors(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="`TF_CONFIG` must be JSON"):
        distribute.num_workers()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="'cluster' mapping"):
        distribute.strategy("multi_worker")
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ValueError, match="reads the cluster from the TF_CONFIG"):
        distribute.strategy("multi_worker")
    with pytest.raises(ValueError, match=r"`strategy` must be one of .*Received: strategy='tpu'"):
        distribute.strategy("tpu")
    monkeypatch.setenv("TF_CONFIG", local_cluster.tf_config([1234, 1235, 1236], 2))
    assert distribute.num_workers() == 3


def test_several_workers_need_a_data_seed(monkeypatch, tfds_dir, manual_dirs):
    monkeypatch.setenv("TF_CONFIG", local_cluster.tf_config([1234, 1235], 0))
    with pytest.raises(ValueError, match="`seed` must be set when TF_CONFIG names several workers"):
        keras_vae.data.load_dataset("mnist", split="train[:100]", batch_size=10, seed=None,
                                    data_dir=str(tfds_dir), manual_dir=str(manual_dirs["mnist"]))


_EVERY_MODEL = """
import sys
import keras, keras_vae
from keras_vae import data, distribute, files

strategy = distribute.strategy("multi_worker")
def images(binarize):
    return data.load_dataset("mnist", split="train[:512]", batch_size=64, binarize=binarize, seed=0,
                             data_dir=sys.argv[1], manual_dir=sys.argv[2])
models = {
    "vae": lambda: keras_vae.VAE(latent_dim=4, hidden_units=(32,), seed=0),
    "beta_vae_capacity": lambda: keras_vae.BetaVAE(latent_dim=4, hidden_units=(32,), capacity=5.0, gamma=10.0,
                                                   capacity_steps=8, seed=0),
    "conv_vae": lambda: keras_vae.ConvVAE(latent_dim=4, filters=(8, 16), seed=0),
    "ae": lambda: keras_vae.AE(latent_dim=4, hidden_units=(32,), seed=0),
    "vq_vae": lambda: keras_vae.VQVAE(num_codes=16, code_dim=4, filters=(8, 16), prior_filters=8, prior_layers=2,
                                      codebook_update="ema", seed=0),
    # A second optimizer (the discriminator's) and a global-batch statistic (all-gathered codes).
    "factor_vae": lambda: keras_vae.FactorVAE(data_shape=(28, 28, 1), latent_dim=4, network="conv",
                                              filters=(8, 16), kernel_size=3, hidden_units=(16,), seed=0),
}
for name, build in models.items():
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build()
        model.compile()
    grey = name == "vq_vae"
    history = model.fit(images(None if grey else "dynamic"), epochs=2, verbose=0)
    steps = int(model.optimizer.iterations.numpy())
    if grey:
        model.fit_prior(images(None), epochs=2, batch_size=64, verbose=0)
        steps += int(model.pixelcnn.optimizer.iterations.numpy())
    if name == "factor_vae":
        steps += int(model.discriminator_optimizer.iterations.numpy())
    print(name, steps, round(history.history["loss"][-1], 4),
          "weights sha256", files.weights_fingerprint(model), flush=True)
    if name == "vae":
        model.export_serving(sys.argv[3], version=1)
"""


def test_every_zoo_model_trains_on_two_workers(tmp_path, tfds_dir, manual_dirs):
    """Each model class of the zoo (and the VQ-VAE's PixelCNN prior, fed as a
    dataset since numpy inputs cannot be split across workers) trains with
    `fit` on two workers, which end with bit-identical weights; a SavedModel
    export from both workers leaves only the chief's."""
    keras_vae.data.prepare("mnist", data_dir=str(tfds_dir), manual_dir=str(manual_dirs["mnist"]))
    scratch = tmp_path / "tmp"  # the workers' temporary folder
    scratch.mkdir()
    command = [sys.executable, "-c", _EVERY_MODEL, str(tfds_dir), str(manual_dirs["mnist"]), str(tmp_path / "serving")]
    code = local_cluster.wait(local_cluster.start_workers(command, 2, log_dir=tmp_path, env={"TMPDIR": str(scratch)}),
                              timeout=900)
    logs = [(tmp_path / f"worker-{i}.log").read_text() for i in range(2)]
    assert code == 0, logs[0][-3000:] + logs[1][-3000:]
    results = [re.findall(r"^(\w+) (\d+) (\S+) weights sha256 (\w+)$", log, re.M) for log in logs]
    assert [r[0] for r in results[0]] == ["vae", "beta_vae_capacity", "conv_vae", "ae", "vq_vae", "factor_vae"]
    assert results[0] == results[1]
    for name, steps, loss, _ in results[0]:  # 2 epochs of 8 steps (and as many for the prior, the discriminator)
        assert int(steps) == (32 if name in ("vq_vae", "factor_vae") else 16) and np.isfinite(float(loss)), name
    # Both workers exported; the chief's SavedModel is the one kept.
    assert os.listdir(tmp_path / "serving" / "vae") == ["1"]
    assert (tmp_path / "serving" / "vae" / "1" / "saved_model.pb").is_file()
    assert not [name for name in os.listdir(scratch) if name.startswith("keras_vae-worker-")]
