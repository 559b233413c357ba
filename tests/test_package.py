"""The package itself: what `import keras_vae` gives."""

import subprocess
import sys


def test_every_submodule_is_an_attribute_of_the_package():
    """`keras_vae.<module>` works after a bare `import keras_vae`, as the README
    writes it (a fresh process: here earlier tests have imported them all)."""
    code = "import keras_vae\nfor name in keras_vae.__all__:\n    getattr(keras_vae, name)\n" \
           "print(keras_vae.callbacks.BackupAndRestore.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "BackupAndRestore"
