"""Training throughput on one device, on two logical devices of this
machine (`MirroredStrategy`) and on one and two local worker processes
(`MultiWorkerMirroredStrategy`), as ratios to one device in the same run.

    python scripts/benchmark_scaling.py --manual-dir ../shared/data --data-dir .cache/tfds

Every configuration runs in a fresh process (logical devices and the
multi-worker runtime must be set before TensorFlow starts), trains the same
model on the same real MNIST images with the same global batch for one
warm-up epoch (tracing, cluster setup) and `--timed-epochs` timed epochs;
the configurations run `--rounds` times, in turn (the second round in
reverse order, to spread the machine's drift), and the table gives the
median over all timed epochs of a configuration, in samples per second. The replicated configurations train
without XLA and with one step per execution (see the README); the baseline
row "1 device" uses the same settings, "1 device, default compile" the
model's own defaults.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_cluster  # noqa: E402

CONFIGS = (
    ("1 device, default compile", "default", 1, True),
    ("1 device", "default", 1, False),
    ("MirroredStrategy, 1 logical device", "mirrored", 1, False),
    ("MirroredStrategy, 2 logical devices", "mirrored", 2, False),
    ("MultiWorkerMirroredStrategy, 1 worker", "multi_worker", 1, False),
    ("MultiWorkerMirroredStrategy, 2 workers", "multi_worker", 2, False),
)

_WORKER = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
name, devices, own_defaults, model_name, batch, examples, timed, data_dir, manual_dir = sys.argv[1:]
if name == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(devices))
import keras, keras_vae
from keras_vae import data, distribute

strategy = distribute.strategy(name)
keras.utils.set_random_seed(0)
with strategy.scope():
    model = {"vae": lambda: keras_vae.VAE(seed=0), "conv_vae": lambda: keras_vae.ConvVAE(seed=0)}[model_name]()
    model.compile(**({} if own_defaults == "1" else {"jit_compile": False, "steps_per_execution": 1}))
ds = data.load_dataset("mnist", split=f"train[:{examples}]", batch_size=int(batch), binarize="dynamic", seed=0,
                       data_dir=data_dir, manual_dir=manual_dir)

class Clock(keras.callbacks.Callback):
    seconds = []
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)

clock = Clock()
model.fit(ds, epochs=1 + int(timed), verbose=0, callbacks=[clock])
samples = int(examples) // int(batch) * int(batch)
if distribute.is_chief(strategy):
    print("RESULT", json.dumps([samples / t for t in clock.seconds[1:]]), flush=True)
"""


def run_config(name, devices, own_defaults, args, log_dir):
    argv = [name, str(devices), "1" if own_defaults else "0", args.model, str(args.batch_size),
            str(args.examples), str(args.timed_epochs), args.data_dir or "", args.manual_dir or ""]
    command = [sys.executable, "-c", _WORKER, *argv]
    workers = devices if name == "multi_worker" else 1
    if name == "multi_worker":
        processes = local_cluster.start_workers(command, workers, log_dir=log_dir)
    else:
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, "worker-0.log"), "wb") as out:
            processes = [subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)]
    if local_cluster.wait(processes, timeout=1800) != 0:
        raise RuntimeError(f"{name} ({devices}) failed; see {log_dir}")
    with open(os.path.join(log_dir, "worker-0.log")) as f:
        line = [line for line in f if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vae", choices=("vae", "conv_vae"))
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument("--examples", type=int, default=20480, help="training images per epoch")
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    parser.add_argument("--timed-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--log-dir", default=os.path.join("runs", "benchmark_scaling"))
    args = parser.parse_args(argv)
    from keras_vae import data  # prepare once, before several processes read it

    data.prepare("mnist", data_dir=args.data_dir, manual_dir=args.manual_dir)
    start = time.perf_counter()
    rates = {label: [] for label, *_ in CONFIGS}
    for round_ in range(args.rounds):
        for label, name, devices, own_defaults in CONFIGS[:: 1 if round_ % 2 == 0 else -1]:
            log_dir = os.path.join(args.log_dir, f"{args.model}-{name}-{devices}-{int(own_defaults)}-{round_}")
            rates[label] += run_config(name, devices, own_defaults, args, log_dir)
            print(f"round {round_}, {label}: {rates[label][-1]:,.0f} samples/s", flush=True)
    median = {label: float(np.median(values)) for label, values in rates.items()}
    base = median["1 device"]
    print(f"\n{args.model}, global batch {args.batch_size}, {args.examples} MNIST images per epoch, "
          f"median of {args.rounds} x {args.timed_epochs} timed epochs, {time.perf_counter() - start:.0f} s in all\n")
    print("| configuration | samples/s | ratio to 1 device | spread (min-max) |\n|---|---|---|---|")
    for label, _, _, _ in CONFIGS:
        print(f"| {label} | {median[label]:,.0f} | {median[label] / base:.2f} | "
              f"{min(rates[label]):,.0f}-{max(rates[label]):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
