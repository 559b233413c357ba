"""Writing files so that a failed or interrupted write loses nothing: the
content goes to a temporary file in the same folder, renamed over the target
only once complete (the previous file stays intact until then)."""

import hashlib
import os
import tempfile
import zipfile


def replace_atomically(path, write, suffix):
    """Calls `write(tmp)` on a temporary file next to `path`, then renames it to `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # as `open` would create it (mkstemp makes 0600)
        with open(tmp, "rb+") as f:  # on disk before it can replace anything
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder):
    """Makes a rename in `folder` durable (where the OS allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model(model, path):
    """`model.save(path)`, atomically; `path` must end in `.keras`."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"`path` must be a .keras file name. Received: path={path!r}")
    return replace_atomically(path, model.save, ".keras")


def load_model(path, name="path"):
    """`keras.models.load_model(path)` for an existing `.keras` file, which
    must be a readable archive: a damaged one (junk, truncated, a corrupted
    member) is refused with a `ValueError` naming `name` and saying so, where
    Keras would report "File not found"."""
    import keras

    path = os.fspath(path)
    problem = f"`{name}` exists but is not a readable .keras archive (corrupted or truncated): {path}"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{problem} ({os.path.getsize(path)} bytes, not a zip archive). "
                         "Save the model again or restore the file.")
    try:
        return keras.models.load_model(path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{problem} ({err}). Save the model again or restore the file.") from None


def write_text(path, text):
    """Writes `text` to `path` atomically."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    return replace_atomically(os.fspath(path), write, ".tmp")


def weights_fingerprint(model):
    """sha256 of the model's weights (shapes, dtypes and values, in order;
    not their generated names): equal fingerprints, bit-identical weights."""
    digest = hashlib.sha256()
    for variable in model.weights:
        value = variable.numpy()
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
