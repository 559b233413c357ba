"""The compute precision a model defaults to, chosen from the machine.

`ConvVAE` trains 1.32x faster under `mixed_bfloat16` than in float32 on a
CPU with AVX512-BF16 / AMX-BF16 instructions, at no measurable cost in
likelihood (README, "bfloat16 on this CPU"). A model class declares such a
measured default (`ObjectiveModel.default_dtype`); `model_dtype` applies
it when the caller passed no `dtype` and left Keras' global policy at its
float32 default, on a machine where it was measured to pay: a CPU with
those instructions, oneDNN on (TensorFlow's default; without it bfloat16
runs through slow generic kernels), and no GPU. Everywhere else, and for
any `dtype` given, Keras' own rules apply.

The chosen policy is the model's: `get_config` saves it, so a `.keras` file
or zoo entry reloads in the precision it was trained in on any machine
(bfloat16 kernels exist on every CPU, only slower without the
instructions), and its scores stay those of its training precision.
"""

import functools
import os

import keras
import tensorflow as tf

#: `/proc/cpuinfo` flags of the x86 instructions that run bfloat16 matrix
#: products in hardware.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The set of CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open(cpuinfo_path, encoding="utf-8") as file:
            for line in file:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=None)
def bfloat16_pays():
    """Whether this machine runs bfloat16 faster than float32 as measured:
    a CPU with bfloat16 instructions, oneDNN on, and no GPU."""
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false"):
        return False
    if tf.config.list_physical_devices("GPU"):
        return False
    return bool(cpu_flags() & set(BFLOAT16_FLAGS))


def model_dtype(dtype, measured_default):
    """The `dtype` a model is built with: `dtype` when given; else
    `measured_default` (a policy name, or `None` for none) when Keras'
    global policy is float32 and `bfloat16_pays()`; else `None` (Keras'
    global policy)."""
    if dtype is not None or measured_default is None:
        return dtype
    if keras.config.dtype_policy().name != "float32" or not bfloat16_pays():
        return None
    return measured_default
