"""Training on several devices or machines with `tf.distribute`.

`strategy(name)` builds the strategy a training run uses: `"default"` (one
device), `"mirrored"` (every local device, `MirroredStrategy`) or
`"multi_worker"` (`MultiWorkerMirroredStrategy`, configured from the
`TF_CONFIG` environment variable as TensorFlow documents it:
https://www.tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable).

Under several workers every worker runs the same program. Only the chief
writes results; the others still run every save (reading synchronised
variables is a collective operation that all workers must join) but write
to a temporary folder that is removed afterwards, as
https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras
recommends. `chief_path(path)` gives each worker the place to write.
"""

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def tf_config():
    """The parsed `TF_CONFIG` environment variable, `{}` when unset."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"`TF_CONFIG` must be JSON. Received: TF_CONFIG={text!r} ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError(
            "`TF_CONFIG` must be a JSON object with a 'cluster' mapping of task types to "
            f"host:port lists and a 'task' with its 'type' and 'index'. Received: TF_CONFIG={text!r}"
        )
    return config


def num_workers():
    """How many processes train together according to `TF_CONFIG` (1 without it)."""
    cluster = tf_config().get("cluster", {})
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def strategy(name="default"):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`)."""
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        config = tf_config()
        task = config.get("task", {})
        if not config or "type" not in task or "index" not in task:
            raise ValueError(
                "`strategy='multi_worker'` reads the cluster from the TF_CONFIG environment "
                'variable, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}\' on the first machine. '
                f"Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def global_batch(tensor):
    """`tensor`, this replica's rows `[b, ...]`, joined with every other
    replica's in replica order: `[global batch, ...]`, the rows one device
    would hold (identity with one replica). For batch statistics (a total
    correlation estimate, a covariance) that must not depend on how a batch
    is split. The gradient of a term computed on the result reaches each
    replica's own rows, summed over the replicas that computed it."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tensor
    return ctx.all_gather(tensor, axis=0)


def is_multi_worker(strategy_=None):
    """Whether `strategy_` (default: the current one) spans several workers."""
    strategy_ = strategy_ or tf.distribute.get_strategy()
    return isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy_.extended._in_multi_worker_mode()  # the test Keras itself uses
    )


def is_chief(strategy_):
    """True on the one worker that writes results: the `chief` task if the
    cluster has one, else worker 0; always True outside multi-worker training.
    Pass the model's strategy (`model.distribute_strategy`): outside its
    scope, as in callbacks, the current strategy is the default one."""
    if not is_multi_worker(strategy_):
        return True
    task_type, task_id = strategy_.cluster_resolver.task_type, strategy_.cluster_resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in strategy_.cluster_resolver.cluster_spec().as_dict()
    )


@contextlib.contextmanager
def chief_path(path, strategy_):
    """Yields where this worker writes `path` under `strategy_`: `path` itself
    on the chief, a path of the same name in a fresh temporary folder
    (removed on exit) on the other workers."""
    if is_chief(strategy_):
        yield path
        return
    folder = tempfile.mkdtemp(prefix="keras_vae-worker-")
    try:
        yield os.path.join(folder, os.path.basename(os.path.normpath(path)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def shardable(dataset):
    """`dataset` with `AutoShardPolicy.DATA`: under several workers each one
    builds the same pipeline and keeps its own share of every global batch
    (needed when the data is not split into at least one file per worker)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
