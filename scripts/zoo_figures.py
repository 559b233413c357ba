"""Writes the latent-space figures (`zoo_tools.LATENT_FIGURES`: a traversal,
the KL per unit, a map of the codes) into zoo entries from their shipped
weights, and links them from each card under its reconstructions.
`train_zoo.py` writes them for the entries it trains; this draws them for
entries trained before it did (deterministic: the first 2,000 test images;
for the sprites entries, the first 2,000 evaluation images of
`zoo_sprites`).

    python scripts/zoo_figures.py --manual-dir ../shared/data --data-dir .cache/tfds          # every entry
    python scripts/zoo_figures.py conv_vae_mnist --manual-dir ../shared/data --data-dir .cache/tfds
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zoo_sprites  # noqa: E402
from keras_vae import files, zoo  # noqa: E402
from zoo_tools import (  # noqa: E402
    FIGURES_NOTE, TEST_IMAGES, figures_markdown, latent_captions, test_images, write_latent_figures,
)

ANCHOR = "![test images (top) and reconstructions (bottom)](reconstructions.png)\n\n"


def add_to_card(folder, anchor=ANCHOR, subject=TEST_IMAGES):
    """Links the figures present in `folder` from its card, under the
    reconstructions image `anchor` (replacing the links already there)."""
    path = os.path.join(folder, "README.md")
    with open(path) as f:
        card = f.read()
    if anchor not in card:
        raise ValueError(f"{path} has no reconstructions image to put the figures under")
    head, tail = card.split(anchor, 1)
    ours = [f"![{caption}]({name})\n\n" for name, caption in latent_captions(subject).items()]
    ours.append(FIGURES_NOTE.split("{")[0])
    while any(tail.startswith(start) for start in ours):  # the links already there
        tail = tail.split("\n\n", 1)[1]
    files.write_text(path, head + anchor + figures_markdown(folder, subject) + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", nargs="*", help="zoo entries (default: all)")
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    args = parser.parse_args(argv)
    for name in args.entries or zoo.names():
        folder = os.path.join(zoo.ROOT, name)
        with open(os.path.join(folder, "metrics.json")) as f:
            dataset = json.load(f).get("dataset") or "mnist"
        model = zoo.load(name)
        if dataset.startswith("sprites"):
            written = zoo_sprites.latent_figures(model, folder)
            add_to_card(folder, zoo_sprites.RECONSTRUCTIONS, zoo_sprites.SUBJECT)
        else:
            written = write_latent_figures(model, folder, *test_images(dataset, model, args.data_dir, args.manual_dir))
            if written:
                add_to_card(folder)
        print(f"{name}: {', '.join(written) or 'no latent-space figures (VQ-VAE)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
