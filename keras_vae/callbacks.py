"""Callbacks for `model.fit`: `BackupAndRestore`, Keras' fault-tolerance
callback made safe to kill at any moment and under several workers; and
`ImageSummaries`, sample grids, reconstructions and latent traversals written
to TensorBoard beside `keras.callbacks.TensorBoard`'s scalars."""

import glob
import json
import os
import shutil

import keras
import numpy as np

from keras_vae import distribute, files, validation

_METADATA = "training_metadata.json"


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that a kill cannot corrupt.

    Used exactly like Keras' callback: pass it to `fit`; a run that is
    killed and started again with the same command restores the weights and
    optimizer state of the last finished epoch and continues from the next
    one, so it ends with the same number of epochs and steps as an
    uninterrupted run. Differences from Keras' own:

    - A backup is `epoch-<N>.weights.h5` plus `training_metadata.json`
      naming it, each written to a temporary file and renamed into place,
      the metadata last. A process killed mid-write (even by SIGKILL) leaves
      the previous backup complete and in use; Keras' callback writes
      `latest.weights.h5` in place, so a kill mid-write leaves a truncated
      file, and a kill between its two files pairs new weights with the old
      epoch count. A backup written by Keras' callback is still restored.
    - Under `MultiWorkerMirroredStrategy` only the chief writes
      `backup_dir`; the other workers save to a temporary folder (the save
      is a collective operation they must join) that is then removed. All
      workers restore from `backup_dir`, which must therefore be storage
      every worker reads (a shared or cloud file system on a real cluster).
    - Backups are written with `fsync` before their rename, so they also
      survive a machine crash, not only a killed process.
    - Backups are taken at the end of each epoch (Keras 3 restarts an
      interrupted epoch from its first batch, so a mid-epoch backup would
      change the number of steps).

    Pass it first in `callbacks`, so that the others see restored weights.
    Like Keras' callback it restores the model and optimizer (the learning
    rate included, so `LearningRateScheduler` continues), not the state of
    other callbacks (`EarlyStopping`, `ReduceLROnPlateau`).

    Args:
        backup_dir: folder of the backup, on a local or mounted file system.
        delete_checkpoint: remove `backup_dir` when training ends normally
            (pass `False` and call `remove_backup()` once the results are
            saved, so that a kill in between still resumes).
    """

    def __init__(self, backup_dir, delete_checkpoint=True):
        if not backup_dir or not isinstance(backup_dir, (str, os.PathLike)) or "://" in os.fspath(backup_dir):
            raise ValueError(
                "`backup_dir` must be a folder path on a local or mounted file system (not a URL). "
                f"Received: backup_dir={backup_dir!r}"
            )
        super().__init__(os.fspath(backup_dir), save_freq="epoch", delete_checkpoint=delete_checkpoint)

    def _metadata(self):
        path = os.path.join(self.backup_dir, _METADATA)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            metadata = json.load(f)
        metadata.setdefault("weights", "latest.weights.h5")  # written by Keras' own callback
        return metadata

    def on_train_begin(self, logs=None):
        self._restored_epoch = self._current_epoch = 0
        metadata = self._metadata()
        if metadata is None:
            return
        if not self.model.built:
            raise ValueError(
                "`BackupAndRestore` restores into a built model: build it (call it on a batch) before `fit`."
            )
        if hasattr(self.model, "_build_optimizer"):  # the package's models: slots for what they train
            self.model._build_optimizer()
        elif self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        self.model._initial_epoch = self._restored_epoch = metadata["epoch"]  # how Keras' callback resumes

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        with distribute.chief_path(self.backup_dir, self.model.distribute_strategy) as folder:
            name = f"epoch-{epoch + 1}.weights.h5"
            weights = os.path.join(folder, name)
            files.replace_atomically(weights, lambda tmp: self.model.save_weights(tmp), ".weights.h5")
            files.write_text(os.path.join(folder, _METADATA), json.dumps({"epoch": epoch + 1, "weights": name}))
            # Older backups and debris of killed writes go only once the new one is in place.
            for path in glob.glob(os.path.join(folder, "epoch-*.weights.h5")) + glob.glob(
                os.path.join(folder, ".partial-*")
            ):
                if os.path.basename(path) != name:
                    os.remove(path)

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None  # a later `fit` of the same model starts afresh
        # Only after an epoch of this run: every worker has then restored
        # (the epoch's collectives wait for all), so none still needs the backup.
        ran = self._current_epoch > self._restored_epoch
        if self.delete_checkpoint and ran and distribute.is_chief(self.model.distribute_strategy):
            self.remove_backup()

    def remove_backup(self):
        """Deletes `backup_dir`, its metadata first: a kill midway leaves no
        metadata naming a deleted file (the next run then starts afresh)."""
        if os.path.exists(os.path.join(self.backup_dir, _METADATA)):
            os.remove(os.path.join(self.backup_dir, _METADATA))
        shutil.rmtree(self.backup_dir, ignore_errors=True)


class ImageSummaries(keras.callbacks.Callback):
    """Writes pictures of the model to TensorBoard every `every_n_epochs` epochs.

    Pass it to `fit` beside Keras' own `keras.callbacks.TensorBoard(log_dir)`;
    both then show in `tensorboard --logdir log_dir`, the images as the run
    `images` (folder `log_dir/images`), at the epoch's number (0-based, as
    Keras' epoch scalars):

    - `samples`: `num_samples` prior samples, always from the same `seed`,
      so successive frames show the same draws as the model learns (left out
      for a `VQVAE`, whose prior is trained after `fit`);
    - `reconstructions`: the first 16 of `images` (a fixed batch, in the
      model's pixel values), each row followed by its reconstructions;
    - `traversal`: `keras_vae.plotting.traversal_grid` from the code of
      `images[0]`, units ranked on `images`, informative units first (models
      with a Gaussian latent: not `AE` or `VQVAE`).

    Images go through `tf.summary.image`. Under several workers only the
    chief writes; the others skip the callback.

    Args:
        log_dir: the TensorBoard log folder (as given to Keras' `TensorBoard`).
        images: a fixed batch of images `[N, *data_shape]`, N >= 2.
        every_n_epochs: write after every N-th epoch (and never in between).
        num_samples: number of prior samples in the grid.
        seed: the samples' seed.
        traversal_steps: values per latent unit in the traversal.
        max_units: rows of the traversal (the top-ranked units).
    """

    def __init__(self, log_dir, images, every_n_epochs=1, num_samples=64, seed=0, traversal_steps=9, max_units=16):
        super().__init__()
        if not log_dir or not isinstance(log_dir, (str, os.PathLike)):
            raise ValueError(f"`log_dir` must be a folder path. Received: log_dir={log_dir!r}")
        images = np.asarray(images)
        if images.ndim < 3 or len(images) < 2:
            raise ValueError(
                "`images` must be a batch of at least 2 images, shape (N, height, width[, channels]). "
                f"Received: images.shape={images.shape}"
            )
        self.log_dir = os.fspath(log_dir)
        self.images = images
        self.every_n_epochs = validation.positive_int("every_n_epochs", every_n_epochs)
        self.num_samples = validation.positive_int("num_samples", num_samples)
        self.seed = validation.seed("seed", seed)
        self.traversal_steps = validation.positive_int("traversal_steps", traversal_steps)
        self.max_units = validation.positive_int("max_units", max_units)
        self._writer = None

    def _pictures(self):
        from keras_vae import plotting

        model = self.model
        pictures = {}
        pixelcnn = getattr(model, "pixelcnn", None)
        if pixelcnn is None:
            pictures["samples"] = plotting.sample_grid(model, self.num_samples, seed=self.seed)
        pictures["reconstructions"] = plotting.reconstruction_grid(model, self.images)
        if plotting.has_gaussian_latent(model):
            pictures["traversal"] = plotting.traversal_grid(
                model, self.images, steps=self.traversal_steps, max_units=self.max_units)
        return pictures

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs or not distribute.is_chief(self.model.distribute_strategy):
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        with self._writer.as_default():
            for tag, grid in self._pictures().items():
                tf.summary.image(tag, np.clip(grid, 0.0, 1.0)[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
