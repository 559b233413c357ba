"""The sprites half of `scripts/train_zoo.py`: the disentanglement entries
(`beta_vae_sprites`, `beta_tcvae_sprites`, `factor_vae_sprites`), trained on
the package's rendering of the dSprites factor grid and measured with every
metric of `keras_vae.disentanglement`.

Protocol:
- training data: `keras_vae.sprites.load_dataset(batch_size, shuffle=True,
  seed)`, repeated: each pass visits the 737,280 images of the grid once in
  a fresh pseudorandom order; training runs a number of steps, checkpointed
  every `steps_per_epoch` of them (a Keras "epoch" here is that chunk);
- metrics: `keras_vae.disentanglement.evaluate(representation(model),
  sprites.ground_truth(), seed=0)` with disentanglement_lib's default
  settings, the representation being the posterior mean; each metric is kept
  in `<work-dir>/disentanglement.json` as it finishes, so a killed run
  resumes at the next one;
- reconstruction loss, KL and ELBO: `model.evaluate` on the `EVAL_IMAGES`
  grid images of `sprites.evaluation_dataset(seed=EVAL_SEED)` (dSprites has
  no test split; disentanglement_lib measures on the training grid too);
  the KL per latent unit on the first 2,000 of them;
- a re-check value for CI: the reconstruction loss of the posterior mean
  (`-log p(x | decoder(latent(x)))`) on the first `CHECK_EXAMPLES` of those
  images, and MIG with 1,000 points (seed 0), both recomputed by
  `tests/test_zoo.py` from the shipped weights.

`python scripts/zoo_sprites.py` prints the README's comparison table from
the zoo entries' `metrics.json` files.
"""

import json
import os
import time

import numpy as np

from keras_vae import disentanglement, files, plotting, sprites, zoo
from zoo_tools import CHECK_EXAMPLES, figures_markdown, files_section, write_latent_figures

#: Images of the grid `model.evaluate` scores (100 batches of 100).
EVAL_IMAGES = 10000
#: The shuffle seed of those images (training uses `--seed`, 0 by default).
EVAL_SEED = 1
#: Points of the CI re-check's MIG.
CHECK_MIG_POINTS = 1000
#: What the card's latent-space figures are drawn from.
SUBJECT = {"image": "evaluation image", "images": "evaluation images", "label": "shape"}
#: disentanglement_lib's training length (Locatello et al. 2019).
REFERENCE_STEPS = 300000
#: The card's rows: (metric, score key, label).
SCORES = (
    ("beta_vae", "eval_accuracy", "beta-VAE score (test accuracy)"),
    ("factor_vae", "eval_accuracy", "FactorVAE score (test accuracy)"),
    ("mig", "discrete_mig", "MIG"),
    ("dci", "disentanglement", "DCI disentanglement"),
    ("dci", "completeness", "DCI completeness"),
    ("dci", "informativeness_test", "DCI informativeness (test accuracy)"),
    ("sap", "sap_score", "SAP"),
    ("modularity_explicitness", "modularity_score", "modularity"),
    ("modularity_explicitness", "explicitness_score_test", "explicitness (test)"),
)


def is_sprites(recipe):
    return recipe["dataset"] == "sprites"


def training_data(args):
    """The endless training stream: passes over the grid, each in a new order."""
    return sprites.load_dataset(batch_size=args.batch_size, shuffle=True, seed=args.seed).repeat()


def evaluation_images(count=EVAL_IMAGES, batch_size=100):
    """The first `count` images of the grid in the order `load_dataset(seed=EVAL_SEED)` draws."""
    return sprites.evaluation_dataset(count, batch_size=batch_size, seed=EVAL_SEED, with_factors=True)


def _images_and_factors(count):
    pairs = [(x.numpy(), f.numpy()) for x, f in evaluation_images(count)]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([f for _, f in pairs])


def check_values(model):
    """The CI re-check values: `(reconstruction loss, MIG)` as the card records them."""
    x, _ = _images_and_factors(CHECK_EXAMPLES)
    loss = float(np.mean(-model.decode(model.latent(x)).log_prob(x).numpy()))
    mig = disentanglement.evaluate(disentanglement.representation(model), sprites.ground_truth(), "mig", seed=0,
                                   settings={"mig": {"num_train": CHECK_MIG_POINTS}})["mig"]["discrete_mig"]
    return loss, mig


def measure(args, model, timings):
    """The card's numbers (wall time in the "evaluation" phase of `timings`)."""
    path = os.path.join(args.work_dir, "disentanglement.json")
    scores = {}
    if os.path.exists(path):
        with open(path) as f:
            scores = json.load(f)
    else:
        timings.set("evaluation", 0.0)
    representation, truth = disentanglement.representation(model), sprites.ground_truth()
    for name in disentanglement.METRICS:
        if name in scores:
            continue
        start = time.perf_counter()
        settings = disentanglement.sized_settings(
            [name], *(None, None) if args.metric_points is None else (args.metric_points, args.metric_points // 2))
        scores[name] = disentanglement.evaluate(representation, truth, name, seed=0, settings=settings)[name]
        files.write_text(path, json.dumps(scores, indent=2))
        timings.add("evaluation", time.perf_counter() - start)
        print(f"{name}: {scores[name]}", flush=True)
    start = time.perf_counter()
    logs = model.evaluate(evaluation_images().map(lambda x, f: x), return_dict=True, verbose=0)
    x, _ = _images_and_factors(2000)
    check_loss, check_mig = check_values(model)
    metrics = {
        "disentanglement": scores,
        "reconstruction_loss": logs["reconstruction_loss"],
        "kl": logs["kl"],
        "elbo": logs["elbo"],
        "loss": logs["loss"],
        "kl_per_unit": [float(v) for v in plotting.unit_kls(model, x)],
        "eval_images": EVAL_IMAGES,
        "check_sprites_reconstruction_loss": check_loss,
        "check_mig": check_mig,
        "check_examples": CHECK_EXAMPLES,
        "check_mig_points": CHECK_MIG_POINTS,
        "steps": int(model.optimizer.iterations.numpy()),
    }
    timings.add("evaluation", time.perf_counter() - start)
    return metrics


def headline(metrics):
    """The preset's metrics: one score per metric, and the reconstruction loss."""
    s = metrics["disentanglement"]
    return {"beta_vae_score": round(s["beta_vae"]["eval_accuracy"], 3),
            "factor_vae_score": round(s["factor_vae"]["eval_accuracy"], 3),
            "mig": round(s["mig"]["discrete_mig"], 3), "dci_disentanglement": round(s["dci"]["disentanglement"], 3),
            "sap": round(s["sap"]["sap_score"], 4), "reconstruction_loss": round(metrics["reconstruction_loss"], 2)}


#: The card's reconstructions image (the latent-space figures follow it).
RECONSTRUCTIONS = "![evaluation images (top) and reconstructions (bottom)](reconstructions.png)\n\n"


def latent_figures(model, folder):
    """The latent-space figures (traversal, KL per unit, the codes coloured by
    shape) from the first 2,000 evaluation images; returns the names written."""
    x, factors = _images_and_factors(2000)
    return write_latent_figures(model, folder, x, factors[:, 0])


def write_figures(model, folder):
    """Samples, reconstructions of the first 16 evaluation images, and `latent_figures`."""
    plotting.plot_samples(model, os.path.join(folder, "samples.png"), num_samples=64, seed=0)
    plotting.plot_reconstructions(model, _images_and_factors(100)[0][:16], os.path.join(folder, "reconstructions.png"))
    latent_figures(model, folder)


def numbers_rows(m):
    s = m["disentanglement"]
    rows = [(label, f"**{s[metric][key]:.3f}**") for metric, key, label in SCORES]
    units = ", ".join(f"{v:.2f}" for v in sorted(m["kl_per_unit"], reverse=True))
    rows += [
        (f"reconstruction loss, nats per image ({m['eval_images']:,} grid images, 1 draw)",
         f"{m['reconstruction_loss']:.2f}"),
        ("KL, nats / ELBO", f"{m['kl']:.2f} / {m['elbo']:.2f}"),
        ("KL per latent unit, nats, largest first (2,000 images)", units),
        (f"CI re-check: reconstruction loss of the posterior mean, first {m['check_examples']:,} images",
         f"{m['check_sprites_reconstruction_loss']:.3f}"),
        (f"CI re-check: MIG with {m['check_mig_points']:,} points", f"{m['check_mig']:.4f}"),
    ]
    return "\n".join(f"| {a} | {b} |" for a, b in rows)


def card(args, recipe):
    def write(record):
        m, t = record["metrics"], record["wall_seconds"]
        steps = m["steps"]
        notes = f"\n{recipe['notes']}\n" if "notes" in recipe else ""
        settings = ("default settings" if args.metric_points is None else
                    f"default settings but {args.metric_points:,} training and {args.metric_points // 2:,} test "
                    "points per metric (`--metric-points`)")
        return f"""# {args.entry}: {recipe["description"]}

{recipe["architecture"]}; trained {steps:,} steps of batch {args.batch_size}
({steps / REFERENCE_STEPS:.0%} of disentanglement_lib's {REFERENCE_STEPS:,}).

![64 samples from the prior, seed 0](samples.png)

{RECONSTRUCTIONS}{figures_markdown(args.output_dir, SUBJECT)}## Numbers

| measure | value |
|---|---|
{numbers_rows(m)}

Wall time on a 2-core CPU machine without GPU (shared with other work):
training {t.get("fit", 0) / 3600:.2f} h, evaluation {t.get("evaluation", 0) / 60:.1f} min.
Run on {record["date"]} with TensorFlow {record["versions"]["tensorflow"]}, Keras {record["versions"]["keras"]}.

## Protocol

Command (from the repository root):

    {record["command"]}

- Data: **the package's rendering of the dSprites factor grid** (`keras_vae.sprites.RenderedSprites`:
  3 shapes x 6 scales x 40 orientations x 32 x 32 positions, 64x64 binary), not the original dSprites
  images, which cannot be downloaded on this machine; `keras_vae.sprites.ground_truth("tfds")` measures
  on the original where TFDS can fetch it.
- Training: `sprites.load_dataset(batch_size={args.batch_size}, shuffle=True, seed={args.seed})`, each pass
  over the 737,280 images in a new order; a resumed run starts its data order afresh (the backups keep the
  weights and both optimizers' state, not the position in the stream).
- Optimizer: {recipe["optimizer_text"]}.
- Metrics: `keras_vae.disentanglement.evaluate(representation(model), sprites.ground_truth(), seed=0)`,
  disentanglement_lib's definitions and {settings}, the representation being the posterior mean.
  The full score dictionaries are in `metrics.json`.
- Reconstruction loss, KL and ELBO: `model.evaluate` on the {m["eval_images"]:,} grid images of
  `sprites.evaluation_dataset(seed={EVAL_SEED})` (dSprites has no test split).
{notes}
{files_section(args.entry, record)}"""

    return write



def comparison_table():
    """The README's table: every metric, the steps and the reconstruction
    loss of each zoo entry that `measure` scored (a `disentanglement` record)."""
    header = ["entry", "steps"] + [label for *_, label in SCORES] + ["reconstruction loss"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in zoo.names():
        with open(os.path.join(zoo.entry_dir(name), "metrics.json")) as f:
            m = json.load(f)["metrics"]
        if "disentanglement" in m:
            s = m["disentanglement"]
            cells = [f"`{name}`", f"{m['steps']:,}"] + [f"{s[metric][key]:.3f}" for metric, key, _ in SCORES]
            lines.append("| " + " | ".join(cells + [f"{m['reconstruction_loss']:.2f}"]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(comparison_table())
