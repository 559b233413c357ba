"""Runs a `keras-vae` command as a cluster of N worker processes on this
machine, each with its own `TF_CONFIG` (localhost ports), as
`MultiWorkerMirroredStrategy` expects on a real cluster:

    python scripts/local_cluster.py --workers 2 -- keras-vae train vae --strategy multi_worker \\
        --epochs 2 --batch-size 128 --output-dir runs/vae_2workers

Worker i's output goes to `--log-dir`/worker-i.log (default: the terminal,
prefixed). The exit code is the first nonzero code of a worker, else 0; if one
worker fails, the others are stopped (a collective operation would wait for it).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time


def free_ports(n):
    """`n` distinct free TCP ports on localhost."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """The `TF_CONFIG` of worker `index` in a cluster of workers on `ports`."""
    return json.dumps({
        "cluster": {"worker": [f"localhost:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    })


def start_workers(command, num_workers, log_dir=None, ports=None, env=None):
    """Starts `command` (an argv list) once per worker; returns the `Popen`s."""
    ports = ports or free_ports(num_workers)
    processes = []
    for index in range(num_workers):
        worker_env = {**os.environ, **(env or {}), "TF_CONFIG": tf_config(ports, index)}
        out = None
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            out = open(os.path.join(log_dir, f"worker-{index}.log"), "ab")
        processes.append(subprocess.Popen(command, env=worker_env, stdout=out, stderr=subprocess.STDOUT if out else None))
        if out:
            out.close()
    return processes


def wait(processes, timeout=None):
    """Waits for all workers; stops the others as soon as one fails. Returns the exit code."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        codes = [p.poll() for p in processes]
        failed = [c for c in codes if c not in (None, 0)]
        if failed or all(c == 0 for c in codes):
            break
        if deadline is not None and time.monotonic() > deadline:
            failed = ["timeout"]
            break
        time.sleep(0.2)
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if failed:
        code = failed[0]
        return 1 if code == "timeout" else (128 - code if code < 0 else code)  # killed by signal N: 128 + N
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-dir", help="write worker-i.log files here instead of the terminal")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command each worker runs (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.workers < 1:
        parser.error(f"--workers must be a positive integer. Received: --workers={args.workers}")
    if not command:
        parser.error("give the command each worker runs after --, e.g. -- keras-vae train vae --strategy multi_worker")
    return wait(start_workers(command, args.workers, args.log_dir))


if __name__ == "__main__":
    sys.exit(main())
