"""The measured bfloat16 default of `ConvVAE` (keras_vae.precision): where it
applies, what overrides it, and that a `.keras` file keeps the precision it
was trained in on a machine where the default would differ.

The machine is real in every test: the fresh processes run with oneDNN off
(`TF_ENABLE_ONEDNN_OPTS=0`), the one setting under which `bfloat16_pays()`
is false on any CPU, so both sides of the choice run here whatever the CPU.
"""

import json
import os
import platform
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_vae import VAE, BetaTCVAE, ConvAE, ConvVAE, cli, precision

SMALL = {"latent_dim": 4, "filters": (8, 16), "seed": 0}


def _run(code, **env):
    """`code` in a fresh Python process with `env` added; its last stdout line as JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cpu_flags_read_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: x\nflags\t\t: fpu sse2 avx512_bf16 amx_tile\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx512_bf16", "amx_tile"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()
    if os.path.exists("/proc/cpuinfo") and platform.machine() == "x86_64":  # this machine's own file
        assert "fpu" in precision.cpu_flags()


def test_conv_vae_defaults_to_bfloat16_only_where_it_was_measured_to_pay():
    expected = "mixed_bfloat16" if precision.bfloat16_pays() else "float32"
    assert ConvVAE(**SMALL).dtype_policy.name == expected
    assert ConvVAE(**SMALL, network="residual").dtype_policy.name == expected
    # Given dtypes win; models not measured in bfloat16 keep Keras' global policy.
    assert ConvVAE(**SMALL, dtype="float32").dtype_policy.name == "float32"
    assert VAE(latent_dim=4, hidden_units=(8,)).dtype_policy.name == "float32"
    assert ConvAE(**SMALL).dtype_policy.name == "float32"
    assert BetaTCVAE(dataset_size=100, data_shape=(28, 28, 1), latent_dim=4, filters=(8, 16)).dtype_policy.name \
        == "float32"
    # A global policy the user set is theirs: no default over it.
    keras.config.set_dtype_policy("mixed_float16")
    try:
        assert ConvVAE(**SMALL).dtype_policy.name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy("float32")


def test_onednn_off_means_float32():
    out = _run("""
        import json
        from keras_vae import ConvVAE, precision
        print(json.dumps([precision.bfloat16_pays(), ConvVAE(latent_dim=4, filters=(8, 16)).dtype_policy.name]))
    """, TF_ENABLE_ONEDNN_OPTS="0")
    assert out == [False, "float32"]


@pytest.mark.skipif(not precision.bfloat16_pays(), reason="this CPU has no bfloat16 instructions: no default to keep")
def test_a_keras_file_keeps_its_training_precision_on_a_machine_without_the_default(tmp_path, mnist_binary):
    x = mnist_binary[:16]
    model = ConvVAE(**SMALL)
    assert model.dtype_policy.name == "mixed_bfloat16"
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    mean = model.encode(x).mean().numpy()
    out = _run(f"""
        import json, keras, numpy as np
        import keras_vae
        model = keras.saving.load_model({path!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        print(json.dumps([model.dtype_policy.name, keras_vae.precision.bfloat16_pays(),
                          model.encode(x).mean().numpy().tolist()]))
    """, TF_ENABLE_ONEDNN_OPTS="0")
    policy, pays, restored_mean = out
    assert (policy, pays) == ("mixed_bfloat16", False)
    # The same bfloat16 arithmetic through other kernels (Eigen's, not oneDNN's): equal to bfloat16's rounding.
    np.testing.assert_allclose(np.asarray(restored_mean), mean, atol=0.01)


def test_the_cli_passes_dtype_through_and_auto_leaves_the_choice_to_the_model():
    parse = cli.build_parser().parse_args
    assert cli._model_kwargs(parse(["train", "conv_vae", "--dataset", "mnist", "--dtype", "float32"]))["dtype"] \
        == "float32"
    assert "dtype" not in cli._model_kwargs(parse(["train", "conv_vae", "--dataset", "mnist"]))
    with pytest.raises(SystemExit):
        parse(["train", "conv_vae", "--dataset", "mnist", "--dtype", "float64"])


@pytest.mark.parametrize("likelihood", ["gaussian_learned_scale", "dequantized_gaussian"])
def test_a_learned_likelihood_scale_stays_float32_inside_a_bfloat16_call(mnist_binary, likelihood):
    """`model(x)` runs in Keras' autocast scope, which would hand the
    likelihood's float32 scale variable over as bfloat16 and mix dtypes."""
    x = mnist_binary[:8] * (200.0 if likelihood == "dequantized_gaussian" else 0.8)
    model = ConvVAE(**SMALL, likelihood=likelihood, dtype="mixed_bfloat16")
    recon = model.reconstruct(x)
    assert recon.dtype == "float32" and tuple(recon.shape) == x.shape
    np.testing.assert_allclose(model(x).numpy(), recon.numpy())
