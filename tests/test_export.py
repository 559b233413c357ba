"""SavedModel export for TF Serving: every signature served by a fresh
process that imports only TensorFlow, `saved_model_cli`, the atomic write,
and a real `tensorflow_model_server` whenever that binary is installed."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae
from keras_vae import AE, VAE, VQVAE, ConvVAE, posteriors, priors

# Runs in a fresh interpreter: loads the export with TensorFlow alone and runs
# every signature on the inputs in `inputs.npz`.
SERVE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    export_dir, inputs_path, outputs_path = sys.argv[1:]
    loaded = tf.saved_model.load(export_dir)
    inputs = np.load(inputs_path)
    outputs = {}
    for name, fn in loaded.signatures.items():
        kwargs = {k.split("/", 1)[1]: tf.constant(v) for k, v in inputs.items() if k.startswith(name + "/")}
        for key, value in fn(**kwargs).items():
            outputs[f"{name}/{key}"] = value.numpy()
    assert "keras_vae" not in sys.modules
    np.savez(outputs_path, **outputs)
    """
)


def _inputs(model, x):
    """One request per signature: `{"signature/input": array}`."""
    if isinstance(model, VQVAE):
        code = model.encode_indices(x).numpy()
    else:
        code = model.latent(x).numpy()
    decode_key = "decode/indices" if isinstance(model, VQVAE) else "decode/z"
    inputs = {
        "serving_default/images": x,
        "encode/images": x,
        decode_key: code,
        "sample/num_images": np.int32(3),
        "sample/seed": np.int32(7),
    }
    if not isinstance(model, AE):
        inputs.update({"score/images": x, "score/num_samples": np.int32(20)})
    return inputs


def _expected(model, x):
    """What the Keras model itself gives for `_inputs(model, x)`."""
    if isinstance(model, VQVAE):
        codes = model.encode_indices(x)
        expected = {"encode/indices": codes, "decode/images": model.decode_indices(codes).mean()}
    else:
        posterior = model.encode(x)
        gaussian = posterior.distribution if posteriors.is_transformed(posterior) else posterior
        expected = {
            "encode/mean": gaussian.mean(),
            "encode/stddev": gaussian.stddev(),
            "decode/images": model.decode(model.latent(x)).mean(),
        }
        if gaussian is not posterior:  # a flow posterior also serves the code `decode` takes
            expected["encode/latent"] = model.latent(x)
    expected.update({"serving_default/reconstruction": model.reconstruct(x), "sample/images": model.sample(3, seed=7)})
    if not isinstance(model, AE):
        scores = model.score(x, num_samples=20, seed=0, batch_size=len(x))
        expected.update({f"score/{k}": v for k, v in scores.items()})
    return {k: np.asarray(v) for k, v in expected.items()}


@pytest.fixture(scope="module")
def trained_models(mnist_binary):
    keras.utils.set_random_seed(0)
    models = {
        "vae": VAE(latent_dim=4, hidden_units=(32,), seed=0, name="vae"),
        "ae": AE(latent_dim=4, hidden_units=(32,), seed=0, name="ae"),
        "conv_vae": ConvVAE(latent_dim=4, filters=(8, 16), seed=0, name="conv_vae", dtype="float32"),
        # ConvVAE's default on CPUs with bfloat16 instructions, pinned so that every machine runs it.
        "conv_vae_bf16": ConvVAE(latent_dim=4, filters=(8, 16), seed=0, name="conv_vae_bf16", dtype="mixed_bfloat16"),
        "iaf_vamp": VAE(latent_dim=4, hidden_units=(32,), seed=0, name="iaf_vamp", prior="vamp",
                        posterior=posteriors.IAF(4, hidden_units=(16,), context_size=8)),
        "maf": VAE(latent_dim=4, hidden_units=(32,), seed=0, name="maf", prior=priors.MAFPrior(4, hidden_units=(16,))),
    }
    models["gmm"] = VAE(latent_dim=4, hidden_units=(32,), seed=0, name="gmm")  # samples from a fitted mixture
    for model in models.values():
        model.compile()
        model.fit(mnist_binary, batch_size=64, epochs=1, verbose=0)
    models["gmm"].fit_sampler(mnist_binary, components=3)
    # A small VQ-VAE with a trained PixelCNN prior (the zoo's entry exports the same signatures, only slower).
    vq = VQVAE(num_codes=128, code_dim=4, filters=(8, 16), prior_filters=8, prior_layers=2, seed=0, name="vq_vae")
    vq.compile()
    vq.fit(mnist_binary, batch_size=64, epochs=1, verbose=0)
    vq.fit_prior(mnist_binary, epochs=1, batch_size=64, verbose=0)
    return {**models, "vq_vae": vq}


@pytest.fixture(scope="module")
def exports(trained_models, tmp_path_factory):
    """`exports[name]`: the model exported as version 2 (once per module)."""
    base = tmp_path_factory.mktemp("serving")

    class Exports(dict):
        def __missing__(self, name):
            self[name] = trained_models[name].export_serving(base, version=2)
            return self[name]

    return Exports()


@pytest.mark.parametrize("name", ["vae", "ae", "conv_vae", "conv_vae_bf16", "vq_vae", "iaf_vamp", "maf", "gmm"])
def test_fresh_tensorflow_process_serves_every_signature_like_keras(name, trained_models, exports, mnist_binary, tmp_path):
    model = trained_models[name]
    x = mnist_binary[:5] if model.likelihood_name == "bernoulli" else mnist_binary[:5] * 0.8
    path = exports[name]
    assert path.endswith(os.path.join(model.name, "2"))
    assert sorted(os.listdir(os.path.dirname(path))) == ["2"]  # no temporary folder left
    np.savez(tmp_path / "inputs.npz", **_inputs(model, x))
    subprocess.run(
        [sys.executable, "-c", SERVE, path, str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        check=True, timeout=300,
    )
    served = dict(np.load(tmp_path / "outputs.npz"))
    expected = _expected(model, x)
    assert set(served) == set(expected)
    signatures = {key.split("/")[0] for key in served}
    assert signatures == ({"serving_default", "encode", "decode", "sample"} | (set() if name == "ae" else {"score"}))
    # bfloat16 compute: the served graph's fused kernels and Keras' own ops round at
    # different points, up to one bfloat16 unit apart (measured: at most 6e-4 here).
    atol = 1e-5 if model.compute_dtype == "float32" else 2e-3
    for key, value in expected.items():
        assert served[key].dtype == value.dtype, key
        np.testing.assert_allclose(served[key], value, atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def vae_export(exports):
    return exports["vae"]


def _saved_model_cli(*args):
    cli = shutil.which("saved_model_cli")
    command = [cli] if cli else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


def test_saved_model_cli_lists_the_signatures_and_serves_decode(vae_export, trained_models, tmp_path):
    shown = _saved_model_cli("show", "--dir", vae_export, "--all")
    assert shown.returncode == 0, shown.stderr
    for name in ("serving_default", "encode", "decode", "sample", "score"):
        assert f"signature_def['{name}']" in shown.stdout
    assert "inputs['z'] tensor_info:" in shown.stdout and "outputs['images'] tensor_info:" in shown.stdout

    z = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
    run = _saved_model_cli(
        "run", "--dir", vae_export, "--tag_set", "serve", "--signature_def", "decode",
        "--input_exprs", f"z={z.tolist()}", "--outdir", str(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    expected = trained_models["vae"].decode(z).mean().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "images.npy"), expected, atol=1e-5)


def test_bad_requests_fail_with_invalid_argument(vae_export, exports):
    # Wrong shape: refused against the signature before anything runs.
    run = _saved_model_cli(
        "run", "--dir", vae_export, "--tag_set", "serve", "--signature_def", "decode",
        "--input_exprs", "z=[[0.0, 1.0]]",
    )
    assert run.returncode != 0 and "shape" in run.stderr.lower()
    # Bad values: the graph's own checks raise InvalidArgumentError naming the input.
    vq_path = exports["vq_vae"]
    check = textwrap.dedent(
        f"""
        import tensorflow as tf
        loaded = tf.saved_model.load({vq_path!r})
        requests = [
            ("sample", dict(num_images=tf.constant(0), seed=tf.constant(1)), "`num_images` must be >= 1"),
            ("sample", dict(num_images=tf.constant(2), seed=tf.constant(-1)), "`seed` must be >= 0"),
            ("score", dict(images=tf.zeros([1, 28, 28, 1]), num_samples=tf.constant(0)), "`num_samples` must be >= 1"),
            ("decode", dict(indices=tf.fill([1, 7, 7], 128)), "`indices` must be < num_codes = 128"),
        ]
        for name, kwargs, message in requests:
            try:
                loaded.signatures[name](**kwargs)
            except tf.errors.InvalidArgumentError as err:
                assert message in err.message, err.message
            else:
                raise AssertionError(name + " accepted a bad request")
        """
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=300)


# Runs in a fresh interpreter, as TF Serving does: the request reaches the
# graph without a shape check against the signature (its C++ session feeds the
# tensor as it is), which Python's own loaders would do first. The signature's
# input placeholder is therefore swapped for one of unknown shape.
SERVE_UNCHECKED = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    export_dir = sys.argv[1]
    ok = "served"
    requests = [  # (signature, {input: value}, the input of the wrong shape, the error's text)
        ("serving_default", {"images": np.zeros([2, 784], np.float32)}, "images", "[2,784] is not compatible with expected shape [?,28,28,1]"),
        ("encode", {"images": np.zeros([2, 28, 28], np.float32)}, "images", "[2,28,28] is not compatible with expected shape [?,28,28,1]"),
        ("decode", {"z": np.zeros([3, 2], np.float32)}, "z", "[3,2] is not compatible with expected shape [?,4]"),
        ("sample", {"num_images": np.array([2], np.int32), "seed": np.int32(0)}, "num_images", "[1] is not compatible with expected shape []"),
        ("score", {"images": np.zeros([1, 28, 28, 1], np.float32), "num_samples": np.zeros([2, 2], np.int32)},
         "num_samples", "[2,2] is not compatible with expected shape []"),
        # Well-formed requests through the same path are answered.
        ("decode", {"z": np.zeros([3, 4], np.float32)}, None, ok),
        ("serving_default", {"images": np.zeros([2, 28, 28, 1], np.float32)}, None, ok),
    ]
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        signatures = tf.compat.v1.saved_model.load(session, ["serve"], export_dir).signature_def
    for name, request, wrong, expected in requests:
        signature = signatures[name]
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
            free = {key: tf.compat.v1.placeholder(tf.as_dtype(value.dtype), shape=None) for key, value in request.items()}
            input_map = {signature.inputs[key].name: free[key] for key in request}
            tf.compat.v1.saved_model.load(session, ["serve"], export_dir, input_map=input_map)
            fetches = {key: info.name for key, info in signature.outputs.items()}
            feed = {free[key]: value for key, value in request.items()}
            try:
                outputs = session.run(fetches, feed)
            except tf.errors.InvalidArgumentError as err:
                assert wrong is not None, (name, err.message)
                assert expected in err.message and f"{{node {wrong}_shape_check}}" in err.message, (name, err.message)
            else:
                assert wrong is None, (name, "served a request of the wrong shape")
                batch = len(next(iter(request.values())))
                assert all(len(value) == batch for value in outputs.values()), name
    assert "keras_vae" not in sys.modules
    """
)


def test_served_signatures_refuse_requests_of_the_wrong_shape(vae_export):
    subprocess.run([sys.executable, "-c", SERVE_UNCHECKED, vae_export], check=True, timeout=300)


def test_export_is_atomic_and_refuses_to_overwrite(trained_models, tmp_path, monkeypatch):
    vae = trained_models["vae"]
    base = tmp_path / "serving"
    first = vae.export_serving(base, version=1)
    listing = sorted(os.listdir(first))
    with pytest.raises(FileExistsError, match="`version` 1 already exists.*overwrite=True"):
        vae.export_serving(base, version=1)
    assert sorted(os.listdir(first)) == listing

    # A write that dies half way leaves neither a version folder nor debris,
    # and an existing version it was meant to replace stays as it was.
    def broken_write_out(self, filepath, **kwargs):
        os.makedirs(filepath)
        with open(os.path.join(filepath, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    # `ExportArchive()` builds a backend-specific subclass: patch that one.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", broken_write_out)
    for version, overwrite in ((2, False), (1, True)):
        with pytest.raises(OSError, match="disk full"):
            vae.export_serving(base, version=version, overwrite=overwrite)
    with pytest.raises(OSError, match="disk full"):  # the model's first version: no empty folder is left
        vae.export_serving(tmp_path / "fresh", version=1)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "fresh") == []
    with pytest.raises(ValueError, match="`base_path` must be a folder path .*Received: base_path=None"):
        vae.export_serving(None)
    assert sorted(os.listdir(base / "vae")) == ["1"]
    assert sorted(os.listdir(first)) == listing

    # A version that another export writes while this one runs is not replaced.
    real_write_out = type(keras.export.ExportArchive()).write_out

    def racing_write_out(self, filepath, **kwargs):
        real_write_out(self, filepath, **kwargs)
        os.makedirs(base / "vae" / "3")
        (base / "vae" / "3" / "theirs").write_text("the other export")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", racing_write_out)
    with pytest.raises(FileExistsError, match="`version` 3 was written .* during this export; it is left untouched"):
        vae.export_serving(base, version=3)
    monkeypatch.undo()
    assert sorted(os.listdir(base / "vae")) == ["1", "3"]
    assert os.listdir(base / "vae" / "3") == ["theirs"]
    shutil.rmtree(base / "vae" / "3")

    other = VAE(latent_dim=4, hidden_units=(32,), seed=1, name="vae")  # different weights
    other.export_serving(base, version=1, overwrite=True)
    assert sorted(os.listdir(base / "vae")) == ["1"]
    decoded = tf.saved_model.load(first).signatures["decode"](z=tf.zeros([1, 4]))["images"]
    np.testing.assert_allclose(decoded, other.decode(np.zeros((1, 4), "float32")).mean(), atol=1e-6)


KILLED_MID_REPLACE = textwrap.dedent(
    """
    import os, signal, sys
    from keras_vae import VAE

    base = sys.argv[1]
    model = VAE(latent_dim=4, hidden_units=(32,), seed=1, name="vae")
    target = os.path.join(base, "vae", "1")
    rename = os.rename

    def dies_before_the_new_version_is_in(src, dst, *args, **kwargs):
        if os.fspath(dst) == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return rename(src, dst, *args, **kwargs)

    os.rename = dies_before_the_new_version_is_in
    model.export_serving(base, version=1, overwrite=True)
    """
)


def test_next_export_restores_a_version_that_a_killed_replacement_moved_aside(trained_models, tmp_path):
    vae = trained_models["vae"]
    base = tmp_path / "serving"
    first = vae.export_serving(base, version=1)
    listing = sorted(os.listdir(first))
    # A real process, really killed (SIGKILL: no cleanup runs) after it moved
    # version 1 aside and before it renamed its own export in.
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_REPLACE)
    result = subprocess.run([sys.executable, str(script), str(base)], capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, result.stderr
    left = os.listdir(base / "vae")
    assert "1" not in left and any(name.startswith(".1.old-") for name in left), left

    with pytest.warns(UserWarning, match="Restored version 1 .* an export that was replacing it was interrupted"):
        with pytest.raises(FileExistsError, match="`version` 1 already exists"):
            vae.export_serving(base, version=1)
    assert [n for n in os.listdir(base / "vae") if not n.startswith(".1.partial-")] == ["1"]
    assert sorted(os.listdir(first)) == listing
    decoded = tf.saved_model.load(first).signatures["decode"](z=tf.zeros([1, 4]))["images"]
    np.testing.assert_allclose(decoded, vae.decode(np.zeros((1, 4), "float32")).mean(), atol=1e-6)


def test_bad_export_arguments(trained_models, mnist_binary, tmp_path):
    vae = trained_models["vae"]
    with pytest.raises(ValueError, match="`version` must be a positive integer. Received: version=0"):
        vae.export_serving(tmp_path, version=0)
    with pytest.raises(ValueError, match="`model_name` must be a non-empty folder name.*Received: model_name='a/b'"):
        vae.export_serving(tmp_path, model_name="a/b")
    untrained_prior = VQVAE(num_codes=8, code_dim=4, filters=(8, 16), seed=0)
    with pytest.raises(ValueError, match="VQVAE.export_serving needs the learned prior.*fit_prior"):
        untrained_prior.export_serving(tmp_path)
    with pytest.raises(ValueError, match="`model` must be a keras_vae model"):
        keras_vae.export.export_serving(keras.Sequential([keras.layers.Dense(1)]), tmp_path)
    assert os.listdir(tmp_path) == []  # nothing written by a refused export


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH (not installed on this machine); "
    "the export is checked with TensorFlow's own loader and saved_model_cli above",
)
def test_tensorflow_model_server_serves_rest_predict(vae_export, trained_models):
    port = _free_port()
    base = os.path.dirname(vae_export)
    server = subprocess.Popen(
        ["tensorflow_model_server", f"--rest_api_port={port}", "--port=0", "--model_name=vae",
         f"--model_base_path={base}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://localhost:{port}/v1/models/vae"

    def post(body):
        request = urllib.request.Request(url + ":predict", json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if '"AVAILABLE"' in response.read().decode():
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError("tensorflow_model_server did not load the model within 60 s")
            time.sleep(0.5)
        z = [[0.5, -0.5, 0.0, 1.0]]
        status, body = post({"signature_name": "decode", "inputs": {"z": z}})
        assert status == 200, body
        expected = trained_models["vae"].decode(np.array(z, "float32")).mean().numpy()
        np.testing.assert_allclose(np.array(body["outputs"]), expected, atol=1e-5)
        status, body = post({"signature_name": "decode", "inputs": {"z": [[0.5, 1.0]]}})
        assert status == 400 and "is not compatible with expected shape [?,4]" in body["error"], body
        status, body = post({"signature_name": "decode", "inputs": {"z": [["a", "b", "c", "d"]]}})
        assert status == 400 and "error" in body, body  # not a float
    finally:
        server.terminate()
        server.wait(timeout=30)
