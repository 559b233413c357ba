"""SavedModel export for TF Serving.

`export_serving(model, base_path, version)` (also `model.export_serving`)
writes one SavedModel with a named signature per use of the model into TF
Serving's layout `<base_path>/<model_name>/<version>/`. The signatures come
from `model.serving_signatures()`; for the Gaussian-posterior models:

| signature | inputs | outputs |
|---|---|---|
| `serving_default` | `images` float32 `[B, *data_shape]` | `reconstruction` `[B, *data_shape]` |
| `encode` | `images` | `mean`, `stddev` float32 `[B, latent_dim]` |
| `decode` | `z` float32 `[B, latent_dim]` | `images` |
| `sample` | `num_images`, `seed` int32 scalars | `images` `[num_images, *data_shape]` |
| `score` | `images`, `num_samples` int32 scalar | `elbo`, `log_likelihood` float32 `[B]` |

`VQVAE` encodes to and decodes from int32 `indices` `[B, h, w]`; `AE`
has no `score` (it defines no density). The version directory is written
under a hidden temporary name next to it and renamed into place when
complete, so a server watching `<base_path>/<model_name>` never sees half a
model; an existing version is only replaced when asked (`overwrite=True`),
and a version that an interrupted replacement left aside is put back by
the next export of that version.
TF Serving feeds a request to the graph without checking its shape against the
signature, so every signature checks its inputs' shapes first and a mismatch
fails with INVALID_ARGUMENT giving both shapes and the input's name. Under
several workers only the chief's export is kept.
"""

import functools
import glob
import os
import shutil
import tempfile
import warnings

import keras
import tensorflow as tf

from keras_vae import distribute, validation


def export_serving(model, base_path, version=1, model_name=None, overwrite=False, verbose=False):
    """Writes `model` as a SavedModel to `<base_path>/<model_name>/<version>/`.

    Args:
        model: a `BaseVAE` (any zoo model).
        base_path: the folder a TF Serving instance watches (its
            `--model_base_path` is `<base_path>/<model_name>`).
        version: positive integer version number (TF Serving serves the
            highest).
        model_name: defaults to `model.name`.
        overwrite: replace an existing `<version>` folder; without it an
            existing version raises `FileExistsError` and is left untouched.
            The replacement is two renames (old version out, new one in), so
            a server that polls in between may briefly unload that version;
            a new version number rolls out without that gap.
        verbose: print the variables Keras' `ExportArchive` writes.

    Returns:
        The path of the version folder.
    """
    if not hasattr(model, "serving_signatures"):
        raise ValueError(
            "`model` must be a keras_vae model (with `serving_signatures`). "
            f"Received: model of type {type(model).__name__}"
        )
    version = validation.positive_int("version", version)
    model_name = model.name if model_name is None else model_name
    if not isinstance(model_name, str) or not model_name or os.sep in model_name or model_name.startswith("."):
        raise ValueError(
            f"`model_name` must be a non-empty folder name without '{os.sep}' or a leading '.'. "
            f"Received: model_name={model_name!r}"
        )
    if not isinstance(base_path, (str, os.PathLike)) or not os.fspath(base_path):
        raise ValueError(f"`base_path` must be a folder path (a non-empty str or os.PathLike). "
                         f"Received: base_path={base_path!r}")
    signatures = model.serving_signatures()  # raises before anything is written
    base_path = os.fspath(base_path)
    target = os.path.join(base_path, model_name, str(version))
    _restore_interrupted(target)
    if os.path.exists(target) and not overwrite:  # checked by every worker alike
        raise FileExistsError(
            f"`version` {version} already exists at {target}; pass overwrite=True (CLI: --overwrite) "
            f"to replace it. Received: version={version}"
        )
    # Under several workers every worker exports (the export reads synchronised
    # variables); only the chief's copy is kept.
    with distribute.chief_path(base_path, model.distribute_strategy) as where:
        _write(model, signatures, where, model_name, version, overwrite, verbose)
    return target


def _restore_interrupted(target):
    """Puts back a version that an overwriting export moved aside and then
    died (killed between its two renames) before renaming the new one in."""
    if os.path.exists(target):
        return
    model_dir, version = os.path.split(target)
    for old in sorted(glob.glob(os.path.join(glob.escape(model_dir), f".{version}.old-*"))):
        try:
            os.rename(os.path.join(old, "previous"), target)
        except OSError:  # nothing to restore in it, or another export restored first
            continue
        shutil.rmtree(old, ignore_errors=True)
        warnings.warn(f"Restored version {version} at {target}: an export that was replacing it was interrupted "
                      f"and had left it in {old}.", stacklevel=3)
        return


def _write(model, signatures, base_path, model_name, version, overwrite, verbose):
    model_dir = os.path.join(base_path, model_name)
    target = os.path.join(model_dir, str(version))
    created = not os.path.isdir(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    # Hidden and non-numeric: TF Serving ignores it while it is written.
    tmp = tempfile.mkdtemp(prefix=f".{version}.partial-", dir=model_dir)
    old = None
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, (fn, input_signature) in signatures.items():
            archive.add_endpoint(name, _with_shape_checks(fn, input_signature), input_signature)
        saved = os.path.join(tmp, "saved_model")
        archive.write_out(saved, verbose=verbose)
        if os.path.exists(target):
            if not overwrite:  # appeared while this export was written
                raise FileExistsError(
                    f"`version` {version} was written at {target} by someone else during this export; "
                    f"it is left untouched. Received: version={version}, overwrite=False"
                )
            old = tempfile.mkdtemp(prefix=f".{version}.old-", dir=model_dir)
            os.replace(target, os.path.join(old, "previous"))
        # A rename onto an existing non-empty folder fails, so without
        # `overwrite` a version that appears in between is never replaced.
        os.rename(saved, target)
    except BaseException:
        if old is not None and not os.path.exists(target):  # put the previous version back
            os.replace(os.path.join(old, "previous"), target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if created and not os.listdir(model_dir):  # a failed first export leaves no empty folder
            os.rmdir(model_dir)


def _with_shape_checks(fn, input_signature):
    """`fn` with each input checked against its `TensorSpec`'s shape first:
    a mismatch fails with an `InvalidArgumentError` that gives both shapes
    and names the check (`<input>_shape_check`). (TF Serving hands a
    request's tensors to the graph unchecked: an `images` request of shape
    `[B, 784]` would otherwise flow through an MLP encoder's flatten and be
    answered.) `tf.ensure_shape` checks in its kernel, at run time; asserts
    built on `tf.shape` fold to constants wherever the signature fixes a
    dimension or the rank, and check nothing there."""

    @functools.wraps(fn)
    def checked(*args):
        return fn(*(
            tf.ensure_shape(x, spec.shape, name=f"{spec.name}_shape_check") for x, spec in zip(args, input_signature)
        ))

    return checked
