"""What the zoo training scripts share: per-phase wall times that survive
resumed runs, and writing an entry (files, `metrics.json`, model card)."""

import datetime
import json
import os
import sys
import time

import keras
import tensorflow as tf

import keras_vae
from keras_vae import files, zoo

#: A model card keeps everything from this heading on when it is rewritten:
#: hand-written notes on how the run went.
NOTES_HEADING = "## How this run went"

#: The CI re-check values are measured on the first this-many test images.
CHECK_EXAMPLES = 1000


class Timings:
    """Wall time per phase in a JSON file, added up across resumed runs."""

    def __init__(self, path):
        self.path = path
        self.values = {}
        if os.path.exists(path):
            with open(path) as f:
                self.values = json.load(f)

    def add(self, phase, seconds):
        self.set(phase, self.values.get(phase, 0.0) + seconds)

    def set(self, phase, seconds):
        self.values[phase] = seconds
        files.write_text(self.path, json.dumps(self.values, indent=2))

    def callback(self, phase):
        """Adds each finished epoch's wall time to `phase`."""
        timings = self

        class EpochTime(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timings.add(phase, time.perf_counter() - self.start)

        return EpochTime()


def run_record(args, **fields):
    """The header of `metrics.json`: command, date, versions, arguments."""
    return {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.date.today().isoformat(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_vae": keras_vae.__version__},
        "args": vars(args),
        **fields,
    }


def write_entry(model, folder, description, headline, record, card):
    """Writes the zoo entry `folder`: the model (weights only, sha256 in
    `preset.json`), `metrics.json` (`record` plus the file checksums) and
    the model card `card(record)`, keeping the card's hand-written notes."""
    os.makedirs(folder, exist_ok=True)
    preset = zoo.save_entry(model, folder, description, headline)
    record = {**record, "files": preset["files"]}
    files.write_text(os.path.join(folder, "metrics.json"), json.dumps(record, indent=2) + "\n")
    readme = os.path.join(folder, "README.md")
    notes = ""
    if os.path.exists(readme):
        with open(readme) as f:
            text = f.read()
        if NOTES_HEADING in text:
            notes = "\n" + text[text.index(NOTES_HEADING):]
    files.write_text(readme, card(record) + notes)
    return record


#: The latent-space figures an entry's card shows, with their captions
#: (formatted with a `subject`: the images they are drawn from, what colours the map).
LATENT_FIGURES = {
    "traversal.png": "latent traversal from the first {image}: one row per unit, the most informative first",
    "kl_units.png": "KL per latent unit on 2,000 {images}, collapsed units at 0 (each unit's code variance "
    "where the KL does not split over units)",
    "latent_map.png": "codes of 2,000 {images} coloured by {label} (their first two principal directions "
    "when latent_dim > 2)",
}
#: The subject of the MNIST-like entries' figures.
TEST_IMAGES = {"image": "test image", "images": "test images", "label": "label"}


def latent_captions(subject=TEST_IMAGES):
    """`LATENT_FIGURES` with their captions for `subject`."""
    return {name: caption.format(**subject) for name, caption in LATENT_FIGURES.items()}


def split_images(dataset, model, split="test", data_dir=None, manual_dir=None, count=2000):
    """The first `count` images of `dataset`'s `split` in the pixel values
    `model`'s likelihood models (binarized with seed 0 for a Bernoulli
    likelihood), and their labels, as numpy arrays."""
    from keras_vae import data

    values = model.likelihood.values
    ds = data.load_dataset(dataset, split=split, batch_size=count, num_examples=count, shuffle=False, seed=0,
                           binarize="static" if values == "binary" else None,
                           values="unit" if values == "binary" else values, with_labels=True,
                           data_dir=data_dir, manual_dir=manual_dir)
    x, labels = next(iter(ds))
    return x.numpy(), labels.numpy()


def test_images(dataset, model, data_dir=None, manual_dir=None, count=2000):
    """`split_images` of the test split."""
    return split_images(dataset, model, "test", data_dir, manual_dir, count)


#: The card section `scripts/sample_quality.py` writes.
QUALITY_HEADING = "## Sample quality"


def quality_markdown(folder):
    """The card's sample-quality section from `folder/sample_quality.json`
    (written by `scripts/sample_quality.py`), or "" when there is none."""
    path = os.path.join(folder, "sample_quality.json")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        q = json.load(f)
    rows = "\n".join(f"| {r['sampler']} | **{r['frechet_distance']:.2f}** |" for r in q["rows"])
    return (f"{QUALITY_HEADING}\n\n"
            f"Fréchet distance between {q['num_samples']:,} samples and the {q['reference']} in the features of "
            f"the package's {q['classifier']} (`keras_vae.quality`; not FID, whose Inception weights cannot be "
            f"had here); lower is better. Real training images score {q['real_images']:.2f} on the same protocol.\n\n"
            f"| sampler | Fréchet distance |\n|---|---|\n{rows}\n\n"
            f"Command: `{q['command']}` ({q['date']}, {q['wall_seconds'] / 60:.1f} min for all entries).\n\n")


def write_latent_figures(model, folder, x, labels):
    """Writes `LATENT_FIGURES` into `folder` for what `model` has: all three
    for a Gaussian latent, the map alone for `AE`, none for `VQVAE`. Returns
    the names written."""
    from keras_vae import plotting

    written = []
    if plotting.has_gaussian_latent(model):
        plotting.plot_traversal(model, x, os.path.join(folder, "traversal.png"), max_units=10)
        plotting.plot_kl_units(model, x, os.path.join(folder, "kl_units.png"))
        written += ["traversal.png", "kl_units.png"]
    if not hasattr(model, "pixelcnn"):
        plotting.plot_latent_map(model, x, os.path.join(folder, "latent_map.png"), labels=labels)
        written.append("latent_map.png")
    return written


#: How a card's latent-space figures were drawn (the paragraph after them).
FIGURES_NOTE = ("The latent-space figures are drawn from the shipped weights on the first 2,000 {images} "
                "(`zoo_tools.write_latent_figures`; `python scripts/zoo_figures.py {name}` redraws them).")


def figures_markdown(folder, subject=TEST_IMAGES):
    """The card's paragraphs for the `LATENT_FIGURES` present in `folder`."""
    shown = [f"![{caption}]({name})\n\n" for name, caption in latent_captions(subject).items()
             if os.path.exists(os.path.join(folder, name))]
    note = FIGURES_NOTE.format(name=os.path.basename(os.path.normpath(folder)), images=subject["images"]) + "\n\n"
    return "".join(shown) + note if shown else ""


def files_section(name, record):
    """The model card's section on the shipped files and how to load them."""
    lines = [f"- `{file_name}`: {info['bytes']} bytes, sha256 `{info['sha256']}`"
             for file_name, info in record["files"].items()]
    return (
        "## Files\n\n" + "\n".join(lines) + "\n\n"
        "`keras_vae.zoo.load` checks both checksums before it builds the model:\n\n"
        "    import keras_vae\n"
        f"    model = keras_vae.zoo.load(\"{name}\")\n"
        "    images = model.sample(16, seed=0)\n\n"
        "`metrics.json` holds every number above, as the script wrote it.\n"
    )
