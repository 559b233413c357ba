"""Pretrained models: `keras_vae.zoo.list()` and `keras_vae.zoo.load(name)`.

Each entry is a folder `zoo/<name>/` at the top of the repository, read
offline from a checkout or an editable install; a wheel carries the same
folders inside the package as `keras_vae/zoo_entries/<name>/` (setup.cfg maps
`zoo/` there at build time). `ROOT` is the folder in use. An entry holds:

- `config.json`: the model as `keras.saving.serialize_keras_object` writes it;
- `model.weights.h5`: its weights (`model.save_weights`);
- `preset.json`: class, one-line description, headline metrics and the
  sha256 and size of both files above, checked before anything is loaded;
- `README.md`: the model card (data, training command, epochs, wall time,
  hardware, metrics with their protocol), `metrics.json` (everything the
  training script measured) and the card's images.

`load` returns the model compiled (Adam, the model's own defaults), ready for
`fit` (fine-tuning), `evaluate`, `sample` and `export_serving`; every model
class also has `from_preset(name)`, which checks that the entry holds that
class or a subclass (and, for a class with a density, not an `AE`).
"""

import hashlib
import json
import os

import keras

from keras_vae import files

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _root():
    """`keras_vae/zoo_entries` in an installed wheel, else the checkout's `zoo/`."""
    installed = os.path.join(_PACKAGE, "zoo_entries")
    return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(_PACKAGE), "zoo")


ROOT = _root()
CONFIG_FILE, WEIGHTS_FILE, PRESET_FILE = "config.json", "model.weights.h5", "preset.json"


def names():
    """The entries' names, sorted."""
    if not os.path.isdir(ROOT):
        raise FileNotFoundError(f"the zoo's entries are missing: {ROOT} does not exist. Reinstall keras-vae, "
                                "or restore zoo/ in a checkout")
    return sorted(
        entry for entry in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, entry, PRESET_FILE))
    )


def list():  # noqa: A001 - `keras_vae.zoo.list()` reads naturally
    """One dict per entry: `name`, `class_name`, `description`, `metrics`
    (the headline numbers of its model card)."""
    return [
        {"name": name, **{k: preset[k] for k in ("class_name", "description", "metrics")}}
        for name, preset in ((name, _preset(name)) for name in names())
    ]


def entry_dir(name):
    """The folder of entry `name` (raises for an unknown name)."""
    valid = names()
    if name not in valid:
        raise ValueError(
            f"`name` must be one of the zoo's entries: {', '.join(valid)}. Received: name={name!r}"
        )
    return os.path.join(ROOT, name)


def _preset(name):
    path = os.path.join(ROOT, name, PRESET_FILE)
    try:
        with open(path) as f:
            preset = json.load(f)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"zoo entry {name!r}: {path} is damaged (not valid JSON: {err}); "
                         "reinstall keras_vae or restore the file") from None
    if not isinstance(preset, dict) or not {"files", "class_name", "description", "metrics"} <= preset.keys():
        raise ValueError(f"zoo entry {name!r}: {path} is damaged (it lacks the keys files, class_name, "
                         "description and metrics); reinstall keras_vae or restore the file")
    return preset


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(name):
    """Checks the sha256 and size of the entry's config and weights; raises a
    `ValueError` naming the file when one is missing, truncated or altered."""
    folder = entry_dir(name)
    for file_name, expected in _preset(name)["files"].items():
        check_file(f"zoo entry {name!r}", os.path.join(folder, file_name), expected)


def check_file(what, path, expected):
    """Raises a `ValueError` naming `what` and `path` unless the file at
    `path` has `expected["bytes"]` bytes and sha256 `expected["sha256"]`."""
    if not os.path.isfile(path):
        raise ValueError(f"{what} is incomplete: {path} is missing. Reinstall keras-vae.")
    size, digest = os.path.getsize(path), _sha256(path)
    if (size, digest) != (expected["bytes"], expected["sha256"]):
        raise ValueError(
            f"{what}: {path} is corrupted or truncated (expected {expected['bytes']} "
            f"bytes with sha256 {expected['sha256']}; found {size} bytes with sha256 {digest}). "
            "Restore it (git checkout, or reinstall keras-vae) before loading."
        )


def file_record(path):
    """`{"sha256": ..., "bytes": ...}` of the file at `path`."""
    return {"sha256": _sha256(path), "bytes": os.path.getsize(path)}


def class_of(name):
    """The registered model class entry `name` holds."""
    entry_dir(name)
    class_name = _preset(name)["class_name"]
    cls = keras.saving.get_registered_object(class_name)
    if cls is None:
        raise ValueError(f"zoo entry {name!r} holds an unknown class {class_name!r}")
    return cls


def load(name, compile=True):
    """The pretrained model `name` (see `list()`), weights checked by sha256.

    With `compile=True` it is compiled with Adam (default learning rate) and
    the model's measured defaults, ready for `fit`; compile it again to
    choose another optimizer.
    """
    check_files(name)
    folder = entry_dir(name)
    with open(os.path.join(folder, CONFIG_FILE)) as f:
        model = keras.saving.deserialize_keras_object(json.load(f))
    model.load_weights(os.path.join(folder, WEIGHTS_FILE))
    if compile:
        model.compile()
    return model


def save_entry(model, folder, description, metrics):
    """Writes `model` as a zoo entry into `folder`: `config.json`,
    `model.weights.h5` and `preset.json` (class, `description`, headline
    `metrics`, sha256 and size of both files). Each file is written
    atomically; `preset.json` last, so an interrupted write leaves an entry
    that fails its checksum instead of loading wrong weights."""
    # An uncompiled copy: `save_weights` would also write optimizer slots.
    bare = type(model).from_config(model.get_config())
    bare.set_weights(model.get_weights())
    config = keras.saving.serialize_keras_object(bare)
    config.pop("compile_config", None)
    files.write_text(os.path.join(folder, CONFIG_FILE), json.dumps(config, indent=1, sort_keys=True))
    files.replace_atomically(os.path.join(folder, WEIGHTS_FILE), bare.save_weights, suffix=".weights.h5")
    preset = {
        "class_name": keras.saving.get_registered_name(type(model)),
        "description": description,
        "metrics": metrics,
        "files": {
            file_name: file_record(os.path.join(folder, file_name)) for file_name in (CONFIG_FILE, WEIGHTS_FILE)
        },
    }
    files.write_text(os.path.join(folder, PRESET_FILE), json.dumps(preset, indent=2) + "\n")
    return preset


__all__ = ["check_file", "check_files", "class_of", "file_record", "entry_dir", "load", "names", "list", "save_entry"]
