"""The `keras-vae` command line: `train`, `train-prior`, `sample`, `plot`,
`evaluate`, `disentanglement`, `export`, `zoo`.

    keras-vae train conv_vae --dataset mnist --epochs 5 --output-dir runs/conv_vae
    keras-vae sample runs/conv_vae/model.keras --output samples.png
    keras-vae evaluate runs/conv_vae/model.keras --dataset mnist
    keras-vae plot runs/conv_vae/model.keras --kind traversal --output traversal.png

    keras-vae train vq_vae --epochs 30 --likelihood-scale 0.218
    keras-vae train-prior runs/vq_vae_mnist/model.keras --epochs 30
    keras-vae sample runs/vq_vae_mnist/model.keras --temperature 0.8

    keras-vae disentanglement runs/factor_vae/model.keras --dataset sprites   # metrics as JSON

    keras-vae zoo                                    # the pretrained entries
    keras-vae sample vq_vae_mnist                    # a zoo name works wherever a .keras file does
    keras-vae export vq_vae_mnist --base-path serving --version 1

`model_path` is a `.keras` file or the name of a zoo entry.
"""

import argparse
import json
import os
import sys
import time

from keras_vae import likelihoods, posteriors, priors, samplers, validation
from keras_vae.models.base import OBJECTIVES

#: The disentanglement family (`keras_vae.models.disentangled`), ConvVAEs with a penalty.
DISENTANGLED = ("beta_tcvae", "factor_vae", "dip_vae")
MODELS = ("vae", "beta_vae", "conv_vae", "ae", "conv_ae", "vq_vae", *DISENTANGLED)
VAES = ("vae", "beta_vae", "conv_vae", "ae", "conv_ae", *DISENTANGLED)
CONV = ("conv_vae", "conv_ae", *DISENTANGLED)
#: `--optimizer` choices -> `keras.optimizers` classes.
OPTIMIZERS = {"adam": "Adam", "adamax": "Adamax", "sgd": "SGD"}
#: `keras-vae plot --kind` choices.
PLOTS = ("traversal", "latent-map", "manifold", "kl-units")
#: `--dataset` names of the dSprites grid: the package's rendering, or the original through TFDS.
DISENTANGLEMENT_DATASETS = ("sprites", "dsprites")
#: Images `--dataset sprites` / `dsprites` evaluates, validates and plots on (dSprites has no test split).
SPRITES_EVAL_IMAGES = 10000


def _checked(convert, check, expected):
    """An argparse type: `text` converted, then `check`ed by the library's own
    validator. argparse names the flag in its error: "argument --num: must be
    a positive integer; received '0'"."""

    def parse(text):
        try:
            return check("value", convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}; received {text!r}") from None

    parse.__name__ = convert.__name__
    return parse


POSITIVE_INT = _checked(int, validation.positive_int, "a positive integer")
POSITIVE_FLOAT = _checked(float, validation.positive_float, "a finite number > 0")
SEED = _checked(int, validation.seed, f"an integer in [0, {validation.MAX_SEED}]")
NON_NEGATIVE_INT = _checked(int, validation.non_negative_int, "an integer >= 0")
NON_NEGATIVE_FLOAT = _checked(float, validation.non_negative_float, "a finite number >= 0")
MOMENTUM = _checked(float, validation.unit_interval, "a number in (0, 1)")


def _int_list(text):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _size(text):
    """`64` or `64x48` (height x width)."""
    try:
        parts = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or HEIGHTxWIDTH; received {text!r}")
    return parts[0] if len(parts) == 1 else parts


def _data_args(parser):
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="any TFDS image dataset, e.g. mnist, fashion_mnist, cifar10, celeb_a "
                        "(default mnist); 'sprites' is the package's rendering of the dSprites grid (no download), "
                        "'dsprites' the original")
    source.add_argument("--images", metavar="DIR", help="a folder of PNG/JPEG/BMP/GIF files (sub-folders too); "
                        "train on all but a held-out --validation-split, evaluate on that")
    source.add_argument("--arrays", metavar="FILE", help="a .npy / .npz file of uint8 or [0, 1] images (x_train / "
                        "x_test in a .npz are its splits; else a held-out --validation-split)")
    parser.add_argument("--image-size", type=_size, help="resize images to N (square) or HxW, e.g. 64")
    parser.add_argument("--crop", type=_size, help="centre-crop images to N or HxW before resizing, e.g. 148")
    parser.add_argument("--validation-split", type=float, default=0.1,
                        help="held-out share of --images / --arrays without their own test split (default 0.1)")
    parser.add_argument("--binarize", default="auto", choices=("auto", "dynamic", "static", "none"),
                        help="'auto': dynamic for the bernoulli likelihood, none otherwise")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=128, help="global batch size")
    parser.add_argument("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or TFDS's own)")
    parser.add_argument("--manual-dir",
                        help="folder with the official dataset files, for machines without internet")


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-vae", description="Variational autoencoders for Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model with model.fit")
    train.add_argument("model", choices=MODELS)
    _data_args(train)
    train.add_argument("--epochs", type=POSITIVE_INT, default=5)
    train.add_argument("--steps-per-epoch", type=POSITIVE_INT,
                       help="training steps of an epoch, the data repeated (default: one pass over it; one pass "
                       "over --dataset sprites is 737,280 images)")
    train.add_argument("--train-examples", type=POSITIVE_INT, help="use only the first N training images (quick trials)")
    train.add_argument("--latent-dim", type=POSITIVE_INT, help="dimension of z (default 16; vq_vae: --code-dim)")
    train.add_argument("--likelihood", choices=likelihoods.NAMES,
                       help="observation model (default: bernoulli on binarized mnist / fashion_mnist and on "
                       "sprites / dsprites; "
                       "discretized_logistic on the 8-bit pixels of any other images; vq_vae: gaussian); it "
                       "chooses the pixel values the data pipeline gives")
    train.add_argument("--likelihood-scale", type=POSITIVE_FLOAT, help="sigma of the 'gaussian' likelihood (default 0.1)")
    train.add_argument("--num-samples", type=POSITIVE_INT,
                       help="posterior samples per example (default 1); the k of --objective iwae")
    train.add_argument("--posterior", choices=posteriors.NAMES,
                       help="family of q(z|x) (vae, beta_vae, conv_vae; default diagonal_gaussian)")
    train.add_argument("--prior", choices=priors.NAMES, help="p(z) (vae, beta_vae, conv_vae; default standard_normal)")
    train.add_argument("--objective", choices=OBJECTIVES,
                       help="what training maximises (vae, conv_vae; default elbo)")
    train.add_argument("--kl-warmup-steps", type=NON_NEGATIVE_INT,
                       help="raise the KL's weight in the loss from 0 to 1 over N steps (vae, beta_vae, conv_vae)")
    train.add_argument("--free-bits", type=NON_NEGATIVE_FLOAT,
                       help="floor in nats per latent dimension on the batch-mean KL in the loss (vae, beta_vae, "
                       "conv_vae)")
    train.add_argument("--hidden-units", type=_int_list, help="MLP widths, e.g. 512,256 (vae, beta_vae, ae)")
    train.add_argument("--filters", type=_int_list,
                       help="conv channels per down-sampling stage, e.g. 32,64 (conv_vae: default from the image "
                       "size, 28 -> 32,64, 32 -> 32,64,128, 64 -> 32,64,128,256; vq_vae: 32,64)")
    train.add_argument("--activation", help="hidden activation, e.g. relu or tanh")
    train.add_argument("--network", choices=("conv", "residual", "locatello"),
                       help="the networks of conv_vae, conv_ae (default conv) and of beta_tcvae, factor_vae, "
                       "dip_vae (default locatello: disentanglement_lib's)")
    train.add_argument("--blocks-per-stage", type=POSITIVE_INT, help="residual blocks per stage (conv_vae, default 2)")
    train.add_argument("--dense-units", type=_int_list,
                       help="dense layers between the conv stages and the latent, mirrored in the decoder, e.g. 450 "
                       "(conv_vae, conv_ae and the disentanglement models; default none, locatello 256)")
    train.add_argument("--weight-norm", action=argparse.BooleanOptionalAction, default=None,
                       help="weight-normalised residual convolutions, initialised from the first training batch "
                       "(conv_vae --network residual; default on)")
    train.add_argument("--beta", type=float, help="KL weight (beta_vae; conv_vae: a beta-VAE), total-correlation "
                       "weight (beta_tcvae, default 6) or commitment weight (vq_vae)")
    train.add_argument("--alpha", type=NON_NEGATIVE_FLOAT, help="mutual-information weight (beta_tcvae, default 1)")
    train.add_argument("--estimator", choices=("mws", "mss"),
                       help="minibatch-weighted or -stratified sampling (beta_tcvae, default mws)")
    train.add_argument("--discriminator-units", type=_int_list,
                       help="the discriminator's hidden widths (factor_vae, default 1000 x 6)")
    train.add_argument("--dip-variant", choices=("i", "ii"), help="DIP-VAE-I or -II (dip_vae, default i)")
    train.add_argument("--lambda-od", type=NON_NEGATIVE_FLOAT,
                       help="off-diagonal covariance weight (dip_vae, default 10)")
    train.add_argument("--lambda-d", type=NON_NEGATIVE_FLOAT,
                       help="diagonal covariance weight (dip_vae, default 10 x lambda-od for i, lambda-od for ii)")
    train.add_argument("--capacity", type=float, help="KL capacity C in nats (beta_vae, Burgess et al.)")
    train.add_argument("--gamma", type=float, help="weight of |KL - C| (beta_vae with --capacity), of the total "
                       "correlation (factor_vae, default 35) or of the dimension-wise KL (beta_tcvae, default 1)")
    train.add_argument("--capacity-steps", type=int, help="steps over which C grows to --capacity")
    train.add_argument("--num-codes", type=POSITIVE_INT, help="codebook size K (vq_vae, default 128)")
    train.add_argument("--code-dim", type=POSITIVE_INT, help="code dimension D (vq_vae, default 16)")
    train.add_argument("--codebook-update", choices=("loss", "ema"), help="codebook learning (vq_vae)")
    train.add_argument("--decay", type=float, help="EMA decay with --codebook-update ema (vq_vae)")
    train.add_argument("--dead-code-steps", type=int, help="restart codes unused for N steps (vq_vae)")
    train.add_argument("--init-from-first-batch", action="store_const", const=True,
                       help="initialise the codebook from the first batch's encodings (vq_vae)")
    train.add_argument("--codebook-initializer",
                       help="Keras initializer of the codebook, e.g. random_uniform (vq_vae)")
    train.add_argument("--prior-filters", type=POSITIVE_INT, help="channels of the PixelCNN prior (vq_vae)")
    train.add_argument("--prior-layers", type=POSITIVE_INT, help="gated blocks of the PixelCNN prior (vq_vae)")
    train.add_argument("--prior-kernel-size", type=POSITIVE_INT, help="masked convolution width of the prior (vq_vae)")
    train.add_argument("--prior-dropout", type=float, help="dropout rate inside the prior's blocks (vq_vae)")
    train.add_argument("--learning-rate", type=POSITIVE_FLOAT, default=1e-3)
    train.add_argument("--optimizer", default="adam", choices=tuple(OPTIMIZERS))
    train.add_argument("--ema-momentum", type=MOMENTUM,
                       help="Polyak-average the weights (Keras' use_ema=True) with this momentum, e.g. 0.999; the "
                       "saved model holds the averages")
    train.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    train.add_argument("--dtype", default="auto", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
                       help="Keras dtype policy of the model; auto: the model's measured default (conv_vae: "
                       "mixed_bfloat16 on a CPU with AVX512-BF16 or AMX-BF16 and no GPU, float32 elsewhere)")
    train.add_argument("--strategy", default="default", choices=("default", "mirrored", "multi_worker"),
                       help="mirrored: all local devices; multi_worker: the cluster in TF_CONFIG")
    train.add_argument("--backup-dir", help="back up every epoch here and resume from it when restarted "
                       "(keras_vae.callbacks.BackupAndRestore)")
    train.add_argument("--tensorboard", metavar="DIR",
                       help="write TensorBoard logs here: Keras' scalars, and sample grids, reconstructions and a "
                       "latent traversal every epoch (keras_vae.callbacks.ImageSummaries); view with "
                       "`tensorboard --logdir DIR`")
    train.add_argument("--seed", type=SEED, default=0)
    train.add_argument("--output-dir", default=None, help="default: runs/<model>_<dataset>")

    prior = sub.add_parser("train-prior", help="train the PixelCNN prior of a saved vq_vae on its training set")
    prior.add_argument("model_path")
    _data_args(prior)
    prior.add_argument("--epochs", type=POSITIVE_INT, default=10)
    prior.add_argument("--train-examples", type=POSITIVE_INT, help="use only the first N training images (quick trials)")
    prior.add_argument("--learning-rate", type=POSITIVE_FLOAT, default=1e-3)
    prior.add_argument("--seed", type=SEED, default=0)
    prior.add_argument("--strategy", default="default", choices=("default", "mirrored", "multi_worker"),
                       help="mirrored: all local devices; multi_worker: the cluster in TF_CONFIG")
    prior.add_argument("--backup-dir", help="back up every epoch here and resume from it when restarted")
    prior.add_argument("--output", help="where to save the model with its prior (default: overwrite model_path)")

    sample = sub.add_parser("sample", help="write a PNG grid of samples from a saved model (its prior, or a sampler "
                            "fitted to the codes of training images)")
    sample.add_argument("model_path")
    sample.add_argument("--num", type=POSITIVE_INT, default=64)
    sample.add_argument("--seed", type=SEED, default=0)
    sample.add_argument("--temperature", type=POSITIVE_FLOAT, help="PixelCNN sampling temperature (vq_vae, default 1)")
    sample.add_argument("--output", default="samples.png")
    sample.add_argument("--sampler", choices=samplers.KINDS,
                        help="what z is drawn from: 'gmm' fits a Gaussian mixture to the codes of the training "
                        "images of the data options below (the default data: mnist), 'prior' the model's prior; "
                        "default: the sampler saved with the model")
    sample.add_argument("--components", type=POSITIVE_INT, help="--sampler gmm: mixture components (default 10)")
    sample.add_argument("--num-images", type=POSITIVE_INT,
                        help="--sampler gmm: fit to the first N training images (default: all; --dataset sprites: "
                        "a fixed draw of 10,000)")
    sample.add_argument("--save-model", metavar="FILE",
                        help="with --sampler: also write the model with that sampler to this .keras file (its "
                        "export's `sample` signature then draws from it)")
    _data_args(sample)

    plot = sub.add_parser("plot", help="write a PNG chart of a saved model's latent space")
    plot.add_argument("model_path")
    plot.add_argument("--kind", required=True, choices=PLOTS,
                      help="traversal: each latent unit varied from the code of the first image, one row per unit, "
                      "the most informative first; latent-map: the codes of --num-images images coloured by label "
                      "(their first two principal directions when latent_dim > 2); manifold: decoded codes over "
                      "the prior's quantiles (latent_dim 2); kl-units: the KL of each latent unit, a bar chart")
    plot.add_argument("--output", required=True, help="the PNG file to write")
    plot.add_argument("--split", default="test")
    plot.add_argument("--num-images", type=POSITIVE_INT, default=2000,
                      help="images the chart is computed from (default 2000; not used by manifold)")
    plot.add_argument("--steps", type=POSITIVE_INT, default=9, help="traversal: values per unit (default 9)")
    plot.add_argument("--limit", type=POSITIVE_FLOAT, default=3.0,
                      help="traversal: each unit goes over [-limit, limit] (default 3)")
    plot.add_argument("--max-units", type=POSITIVE_INT, help="traversal: at most this many rows (default: all units)")
    plot.add_argument("--size", type=POSITIVE_INT, default=20, help="manifold: a size x size grid (default 20)")
    plot.add_argument("--seed", type=SEED, default=0)
    _data_args(plot)

    evaluate = sub.add_parser("evaluate", help="test-set ELBO and its parts for a saved model")
    evaluate.add_argument("model_path")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--seed", type=SEED, default=0)
    evaluate.add_argument("--iw-samples", type=POSITIVE_INT,
                          help="also report nll and bits_per_dim, importance-weighted with this many samples")
    _data_args(evaluate)

    export = sub.add_parser("export", help="write a SavedModel for TF Serving: BASE_PATH/NAME/VERSION")
    export.add_argument("model_path")
    export.add_argument("--base-path", required=True, help="the folder TF Serving watches (one level above NAME)")
    export.add_argument("--name", help="model name in TF Serving (default: the model's name)")
    export.add_argument("--version", type=POSITIVE_INT, default=1)
    export.add_argument("--overwrite", action="store_true", help="replace an existing version")

    metrics = sub.add_parser("disentanglement",
                             help="disentanglement metrics of a saved model on a ground-truth dataset, as JSON")
    metrics.add_argument("model_path")
    metrics.add_argument("--dataset", choices=DISENTANGLEMENT_DATASETS, default="sprites",
                         help="sprites: the package's rendering of the dSprites factor grid; dsprites: the "
                         "original through TFDS (downloads it)")
    metrics.add_argument("--metrics", type=_name_list, help="comma-separated metric names (default: all of "
                         "beta_vae, factor_vae, mig, dci, sap, modularity_explicitness)")
    metrics.add_argument("--num-train", type=POSITIVE_INT,
                         help="training points of every metric (default: each metric's own, 10,000)")
    metrics.add_argument("--num-test", type=POSITIVE_INT,
                         help="evaluation points of every metric (default: each metric's own, 5,000)")
    metrics.add_argument("--seed", type=SEED, default=0)
    metrics.add_argument("--data-dir", help="TFDS data directory (--dataset dsprites)")
    metrics.add_argument("--output", help="also write the JSON to this file")

    sub.add_parser("zoo", help="list the pretrained models")
    return parser


def _model_kwargs(args):
    kwargs = {"seed": args.seed}
    if args.dtype != "auto":
        kwargs["dtype"] = args.dtype
    vq = ("vq_vae",)
    options = {
        "latent_dim": VAES,
        "likelihood": MODELS,
        "likelihood_scale": MODELS,
        "num_samples": VAES,
        "posterior": ("vae", "beta_vae", "conv_vae"),
        "prior": ("vae", "beta_vae", "conv_vae"),
        "objective": ("vae", "conv_vae"),
        "kl_warmup_steps": ("vae", "beta_vae", "conv_vae"),
        "free_bits": ("vae", "beta_vae", "conv_vae"),
        "hidden_units": ("vae", "beta_vae", "ae"),
        "filters": (*CONV, "vq_vae"),
        "activation": MODELS,
        "network": CONV,
        "blocks_per_stage": CONV,
        "weight_norm": CONV,
        "dense_units": CONV,
        "beta": ("beta_vae", "conv_vae", "beta_tcvae", "vq_vae"),
        "alpha": ("beta_tcvae",),
        "estimator": ("beta_tcvae",),
        "discriminator_units": ("factor_vae",),
        "dip_variant": ("dip_vae",),
        "lambda_od": ("dip_vae",),
        "lambda_d": ("dip_vae",),
        "capacity": ("beta_vae",),
        "gamma": ("beta_vae", "beta_tcvae", "factor_vae"),
        "capacity_steps": ("beta_vae",),
        "num_codes": vq,
        "code_dim": vq,
        "codebook_update": vq,
        "decay": vq,
        "dead_code_steps": vq,
        "init_from_first_batch": vq,
        "codebook_initializer": vq,
        "prior_filters": vq,
        "prior_layers": vq,
        "prior_kernel_size": vq,
        "prior_dropout": vq,
    }
    for option, models in options.items():
        value = getattr(args, option)
        if value is None:
            continue
        if args.model not in models:
            raise ValueError(
                f"`--{option.replace('_', '-')}` applies to {', '.join(models)}. Received it for: {args.model}"
            )
        kwargs[option] = value
    renamed = {"discriminator_units": "hidden_units", "dip_variant": "variant"}
    kwargs = {renamed.get(k, k): v for k, v in kwargs.items()}
    if args.model == "conv_vae" and "beta" in kwargs:
        from keras_vae import penalties

        kwargs["penalty"] = penalties.WeightedKL(kwargs.pop("beta"))
    return kwargs


def _binarize(choice, values):
    """`binarize=` for a pipeline whose likelihood models `values` pixels."""
    if values == "binary":
        if choice == "none":
            raise ValueError(
                "`--binarize` must be dynamic or static for the bernoulli likelihood (grey "
                "values are outside its support {0, 1}; use --likelihood continuous_bernoulli "
                "for them). Received: --binarize none"
            )
        return "dynamic" if choice == "auto" else choice
    if choice in ("auto", "none"):
        return None
    if values != "unit":
        raise ValueError(f"`--binarize` applies to grey values; this likelihood models {values} pixels. "
                         f"Received: --binarize {choice}")
    return choice


def _source_name(args):
    """What the data is called in output paths and messages."""
    if args.images or args.arrays:
        return os.path.splitext(os.path.basename(os.path.normpath(args.images or args.arrays)))[0]
    return args.dataset or "mnist"


def _default_likelihood(args, model):
    if model == "vq_vae":
        return "gaussian"
    grey_digits = not (args.images or args.arrays) and (args.dataset or "mnist") in ("mnist", "fashion_mnist")
    return "bernoulli" if grey_digits or _is_sprites(args) else "discretized_logistic"


def _is_sprites(args):
    return getattr(args, "dataset", None) in DISENTANGLEMENT_DATASETS


def _sprites_dataset(args, values, training, num_examples, with_labels):
    """`--dataset sprites` (rendered) or `dsprites` (TFDS): the whole grid to
    train on, or a fixed draw of `num_examples` of it (the evaluation draw,
    seed `--seed` + 1, unless `training`); labels are the shape index."""
    from keras_vae import sprites

    given = {"--image-size": args.image_size, "--crop": args.crop, "--binarize": args.binarize != "auto" or None}
    for flag, value in given.items():
        if value is not None:
            raise ValueError(f"`{flag}` does not apply to --dataset {args.dataset}: its images are 64x64 and binary. "
                             f"Received: {flag} {getattr(args, flag[2:].replace('-', '_'))}")
    if values not in ("binary", "unit"):
        raise ValueError(f"`--likelihood` must model binary or [0, 1] pixels for --dataset {args.dataset} (its "
                         f"images are binary): bernoulli or continuous_bernoulli. Received a likelihood of {values} "
                         "pixels")
    source = dict(source="rendered", data_dir=None, manual_dir=None) if args.dataset == "sprites" else dict(
        source="tfds", data_dir=args.data_dir, manual_dir=args.manual_dir)
    if training and num_examples is None:
        ds = sprites.load_dataset(batch_size=args.batch_size, shuffle=True, seed=args.seed,
                                  with_factors=with_labels, **source)
    else:
        seed = args.seed if training else (args.seed + 1) % (validation.MAX_SEED + 1)
        ds = sprites.evaluation_dataset(num_examples or SPRITES_EVAL_IMAGES, batch_size=args.batch_size, seed=seed,
                                        with_factors=with_labels, **source)
    return ds.map(lambda x, f: (x, f[:, 0])) if with_labels else ds


def _source_options(args):
    """The data source and geometry options as given (None: not given)."""
    return {"--dataset": args.dataset, "--images": args.images, "--arrays": args.arrays,
            "--image-size": args.image_size, "--crop": args.crop}


#: The `keras_vae.data` arguments behind the data options, for its errors.
_DATA_OPTIONS = {"name": "--dataset", "path": "--images", "images": "--arrays", "image_size": "--image-size",
                 "crop": "--crop", "validation_split": "--validation-split", "batch_size": "--batch-size",
                 "split": "--split"}


def _dataset(args, split, likelihood, training, num_examples=None, with_labels=False):
    """The pipeline of `args`' data source, in the pixel values `likelihood`
    (a layer or a name) models; `keras_vae.data`'s errors name the options."""
    try:
        return _source_pipeline(args, split, likelihood, training, num_examples, with_labels)
    except ValueError as error:
        text = str(error)
        for argument, option in _DATA_OPTIONS.items():
            text = text.replace(f"`{argument}`", f"`{option}`").replace(f"Received: {argument}=", f"Received: {option} ")
        if text == str(error):
            raise
        raise ValueError(text) from error


def _source_pipeline(args, split, likelihood, training, num_examples, with_labels):
    from keras_vae import data

    values = (likelihoods.make(likelihood, (1, 1, 1)) if isinstance(likelihood, str) else likelihood).values
    if _is_sprites(args):
        return _sprites_dataset(args, values, training, num_examples, with_labels)
    common = dict(batch_size=args.batch_size, binarize=_binarize(args.binarize, values), shuffle=training,
                  seed=args.seed, num_examples=num_examples, values="unit" if values == "binary" else values,
                  image_size=args.image_size, crop=args.crop, with_labels=with_labels)
    if args.images:
        return data.from_directory(args.images, split=split, validation_split=args.validation_split, **common)
    if args.arrays:
        return data.from_arrays(args.arrays, split=split, validation_split=args.validation_split, **common)
    return data.load_dataset(args.dataset or "mnist", split=split, data_dir=args.data_dir,
                             manual_dir=args.manual_dir, **common)


def _write_json(obj, path):
    from keras_vae import files

    files.write_text(path, json.dumps(obj, indent=2))


def train(args):
    import keras
    import numpy as np

    import keras_vae
    from keras_vae import distribute, plotting

    if args.train_examples is not None and _is_sprites(args):
        raise ValueError(f"`--train-examples` does not apply to --dataset {args.dataset} (the grid's first images "
                         "in index order are all small squares); shorten a run with --steps-per-epoch. "
                         f"Received: --train-examples {args.train_examples}")
    if args.train_examples is not None and args.train_examples < args.batch_size:
        raise ValueError(
            "`--train-examples` must be at least `--batch-size` (incomplete training batches are dropped). "
            f"Received: --train-examples={args.train_examples}, --batch-size={args.batch_size}"
        )
    classes = {"vae": keras_vae.VAE, "beta_vae": keras_vae.BetaVAE, "conv_vae": keras_vae.ConvVAE,
               "ae": keras_vae.AE, "conv_ae": keras_vae.ConvAE, "vq_vae": keras_vae.VQVAE,
               "beta_tcvae": keras_vae.BetaTCVAE, "factor_vae": keras_vae.FactorVAE, "dip_vae": keras_vae.DIPVAE}
    kwargs = _model_kwargs(args)
    kwargs.setdefault("likelihood", _default_likelihood(args, args.model))
    out = args.output_dir or os.path.join("runs", f"{args.model}_{_source_name(args)}")
    keras.utils.set_random_seed(args.seed)
    strategy = distribute.strategy(args.strategy)  # before any TensorFlow op: collectives are set at start-up
    train_ds = _dataset(args, "train", kwargs["likelihood"], training=True, num_examples=args.train_examples)
    test_ds = _dataset(args, "test", kwargs["likelihood"], training=False)
    kwargs["data_shape"] = tuple(train_ds.element_spec.shape[1:])
    if args.model == "beta_tcvae":  # N of the minibatch estimators: the examples of one pass
        batches = int(train_ds.cardinality())
        if batches < 1:
            raise ValueError(f"beta_tcvae needs the number of training examples, and the pipeline of "
                             f"{_source_name(args)} does not know it (cardinality {batches})")
        kwargs["dataset_size"] = batches * args.batch_size
    if args.steps_per_epoch is not None:
        train_ds = train_ds.repeat()
    with strategy.scope():
        model = classes[args.model](name=args.model, **kwargs)
        jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
        averaging = {} if args.ema_momentum is None else {"use_ema": True, "ema_momentum": args.ema_momentum}
        optimizer = getattr(keras.optimizers, OPTIMIZERS[args.optimizer])(args.learning_rate, **averaging)
        model.compile(optimizer=optimizer, jit_compile=jit)
    if getattr(model, "initializes_from_data", False):  # from training images (a restored backup overrides it)
        first = _dataset(args, "train", model.likelihood, training=True, num_examples=args.batch_size)
        model.initialize_from_data(next(iter(first)), seed=args.seed)
    backup = _backup(args)
    watch = []
    if args.tensorboard and distribute.is_chief(strategy):  # the summaries are the chief's, as its other files
        from keras_vae import callbacks

        watch = [keras.callbacks.TensorBoard(args.tensorboard),
                 callbacks.ImageSummaries(args.tensorboard, next(iter(test_ds))[:16], seed=args.seed)]
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=test_ds, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        callbacks=backup + watch, verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - start
    fingerprint = _save_trained(model, os.path.join(out, "model.keras"), strategy, backup, model.optimizer, args.model)
    if not distribute.is_chief(strategy):
        return 0
    _write_json({"config": {k: v for k, v in vars(args).items() if k != "func"}, "seconds": seconds,
                 "steps": int(model.optimizer.iterations.numpy()), "weights_sha256": fingerprint,
                 "epochs_in_this_run": [e + 1 for e in history.epoch],  # fewer after a resume
                 "history": history.history}, os.path.join(out, "history.json"))
    test_batch = next(iter(test_ds))
    plots = ["reconstructions", "interpolations"]
    plotting.plot_reconstructions(model, test_batch, os.path.join(out, "reconstructions.png"))
    plotting.plot_interpolations(model, test_batch[:16], os.path.join(out, "interpolations.png"))
    if model.prior is not None:
        plotting.plot_samples(model, os.path.join(out, "samples.png"), seed=args.seed)
        plots.append("samples")
    final = {k: history.history[k][-1] for k in history.history}
    resumed = f" (resumed from a backup: the last {len(history.epoch)} run now)" if len(history.epoch) < args.epochs else ""
    parts = ", ".join(f"{k[4:]} {final[k]:.2f}" for k in final if k.startswith("val_") and k != "val_loss")
    print(
        f"{args.model} on {_source_name(args)}: {args.epochs} epochs{resumed} in {seconds:.1f} s, "
        f"{model.optimizer.iterations.numpy()} steps; test loss {final.get('val_loss', np.nan):.2f} ({parts}); "
        f"weights sha256 {fingerprint}; wrote {out}/{{model.keras,history.json,{','.join(p + '.png' for p in plots)}}}"
    )
    if model.prior is None:
        print(f"no prior yet, so no samples: keras-vae train-prior {os.path.join(out, 'model.keras')}")
    return 0


def train_prior(args):
    import keras

    from keras_vae import distribute, plotting

    if args.output is None and not args.model_path.endswith(".keras"):
        raise ValueError(
            "`--output` (a .keras file name) is needed when `model_path` is not a .keras file to update, "
            f"such as a zoo entry. Received: model_path={args.model_path!r} and no --output"
        )
    output = args.output or args.model_path
    if not output.endswith(".keras"):
        raise ValueError(f"`--output` must be a .keras file name. Received: --output={output!r}")
    strategy = distribute.strategy(args.strategy)
    with strategy.scope():
        model = _load(args.model_path)
    if not hasattr(model, "fit_prior"):
        raise ValueError(
            f"`model_path` must hold a model with a learned prior (vq_vae). "
            f"Received: a {type(model).__name__} from {args.model_path}"
        )
    keras.utils.set_random_seed(args.seed)
    train_ds = _dataset(args, "train", model.likelihood, training=False, num_examples=args.train_examples)
    test_ds = _dataset(args, "test", model.likelihood, training=False)
    with strategy.scope():
        model.pixelcnn.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    backup = _backup(args)
    start = time.perf_counter()
    history = model.fit_prior(train_ds, validation_data=test_ds, epochs=args.epochs, batch_size=args.batch_size,
                              shuffle_seed=args.seed, callbacks=backup, verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - start
    fingerprint = _save_trained(model, output, strategy, backup, model.pixelcnn.optimizer, "prior")
    if not distribute.is_chief(strategy):
        return 0
    samples = os.path.join(os.path.dirname(os.path.abspath(output)), "samples.png")
    plotting.plot_samples(model, samples, seed=args.seed)
    print(
        f"prior of {args.model_path}: {args.epochs} epochs in {seconds:.1f} s; test cross-entropy "
        f"{history.history.get('val_loss', [float('nan')])[-1]:.4f} nats per code; weights sha256 {fingerprint}; "
        f"wrote {output} and {samples}"
    )
    return 0


def _backup(args):
    """`[BackupAndRestore]` for `--backup-dir`, kept until the results are saved."""
    from keras_vae import callbacks

    return [callbacks.BackupAndRestore(args.backup_dir, delete_checkpoint=False)] if args.backup_dir else []


def _save_trained(model, path, strategy, backup, optimizer, what):
    """Saves `model` to `path` (every worker saves, a collective; only the
    chief keeps it), then drops the backup; returns the weights' sha256."""
    from keras_vae import distribute, files

    fingerprint = files.weights_fingerprint(model)
    with distribute.chief_path(path, strategy) as where:
        files.save_model(model, where)
    if not distribute.is_chief(strategy):
        print(f"{what}: worker finished {optimizer.iterations.numpy()} steps; weights sha256 {fingerprint}")
    elif backup:
        backup[0].remove_backup()
    return fingerprint


def _load(path):
    from keras_vae import files, zoo

    if os.path.isfile(path):
        return files.load_model(path, "model_path")
    if path in zoo.names():
        return zoo.load(path)
    raise ValueError(
        f"`model_path` must be an existing .keras file or a zoo entry ({', '.join(zoo.names())}). "
        f"Received: model_path={path!r}"
    )


def sample(args):
    import tensorflow as tf

    from keras_vae import files, plotting

    if args.sampler != "gmm":  # the prior, or the saved sampler, reads no images
        given = {**_source_options(args), "--num-images": args.num_images, "--components": args.components}
        flag = next((flag for flag, value in given.items() if value is not None), None)
        if flag is not None:
            raise ValueError(f"`{flag}` applies to `sample --sampler gmm` (the training images whose codes it "
                             f"fits); other samples read no images. Received: {flag} with --sampler "
                             f"{args.sampler or '(none)'}")
    if args.save_model is not None and args.sampler is None:
        raise ValueError("`--save-model` writes the model with the sampler of `--sampler`, which is not given. "
                         f"Received: --save-model {args.save_model!r}")
    if args.save_model is not None and not args.save_model.endswith(".keras"):
        raise ValueError(f"`--save-model` must be a .keras file name. Received: --save-model {args.save_model!r}")
    model = _load(args.model_path)
    kwargs = {}
    if args.temperature is not None:
        if not hasattr(model, "pixelcnn"):
            raise ValueError(
                f"`--temperature` applies to vq_vae. Received it for: {type(model).__name__}"
            )
        kwargs["temperature"] = args.temperature
    if args.sampler is not None and hasattr(model, "pixelcnn"):
        raise ValueError("`--sampler` applies to models with a vector latent; a vq_vae draws its code maps from "
                         f"its PixelCNN prior (keras-vae train-prior). Received: --sampler {args.sampler}")
    fitted = ""
    if args.sampler == "gmm":
        images = _dataset(args, "train", model.likelihood, training=False, num_examples=args.num_images)
        shape = tuple(images.element_spec.shape[1:])
        if shape != tuple(model.data_shape):
            raise ValueError(f"The data options must give images of the model's shape {tuple(model.data_shape)} "
                             f"(see --image-size, --dataset / --images / --arrays). Received: {shape} images from "
                             f"{_source_name(args)}")
        count = int(images.reduce(0, lambda n, x: n + tf.shape(x)[0]))  # fills the pipeline's cache
        components = 10 if args.components is None else args.components
        history = model.fit_sampler(images, kind="gmm", components=components, seed=args.seed)
        fitted = (f"; a {components}-component mixture fitted to the codes of {count} training images of "
                  f"{_source_name(args)} ({history[-1]:.2f} nats per code)")
    elif args.sampler == "prior":
        model.fit_sampler(None, kind="prior")
    plotting.plot_samples(model, args.output, num_samples=args.num, seed=args.seed, **kwargs)
    if args.save_model is not None:
        files.save_model(model, args.save_model)
    print(f"wrote {args.num} samples of {args.model_path} to {args.output}{fitted}"
          + ("" if args.save_model is None else f"; the model with its sampler to {args.save_model}"))
    return 0


def _images(args, model, with_labels):
    """The first `--num-images` images of `args`' data (and their labels, or
    None when the source has none and `with_labels`)."""
    import numpy as np

    try:
        ds = _dataset(args, args.split, model.likelihood, training=False, num_examples=args.num_images,
                      with_labels=with_labels)
    except ValueError as err:
        if not with_labels or "with_labels" not in str(err):
            raise
        print(f"keras-vae plot: {_source_name(args)} has no labels; the codes are drawn in one colour",
              file=sys.stderr)
        return _images(args, model, with_labels=False)
    batches = list(ds.as_numpy_iterator())
    if not with_labels:
        return np.concatenate(batches), None
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def plot(args):
    from keras_vae import plotting

    model = _load(args.model_path)
    if args.kind == "manifold":
        plotting.plot_manifold(model, args.output, size=args.size)
    else:
        x, labels = _images(args, model, with_labels=args.kind == "latent-map")
        if args.kind == "traversal":
            plotting.plot_traversal(model, x, args.output, steps=args.steps, limit=args.limit,
                                    max_units=args.max_units)
        elif args.kind == "latent-map":
            plotting.plot_latent_map(model, x, args.output, labels=labels)
        else:
            plotting.plot_kl_units(model, x, args.output)
    print(f"wrote the {args.kind} of {args.model_path} to {args.output}")
    return 0


def evaluate(args):
    import keras

    model = _load(args.model_path)
    keras.utils.set_random_seed(args.seed)
    ds = _dataset(args, args.split, model.likelihood, training=False)
    if not model.compiled:
        model.compile()
    kwargs = {}
    if args.iw_samples is not None:
        kwargs["iw_samples"] = args.iw_samples
    logs = model.evaluate(ds, return_dict=True, verbose=0, **kwargs)
    print(json.dumps({"model": args.model_path, "dataset": _source_name(args), "split": args.split,
                      **{k: round(float(v), 4) for k, v in logs.items()}}))
    return 0


def _name_list(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def disentanglement(args):
    from keras_vae import disentanglement as metrics_lib
    from keras_vae import sprites

    model = _load(args.model_path)
    if tuple(model.data_shape) != sprites.IMAGE_SHAPE:
        raise ValueError(f"`model_path` must hold a model of {sprites.IMAGE_SHAPE} images for --dataset "
                         f"{args.dataset}. Received: a {type(model).__name__} of {tuple(model.data_shape)} images")
    data = sprites.ground_truth("tfds" if args.dataset == "dsprites" else "rendered", data_dir=args.data_dir)
    names = metrics_lib.METRICS if args.metrics is None else args.metrics
    for name in names:
        validation.choice("--metrics", name, metrics_lib.METRICS)
    settings = metrics_lib.sized_settings(names, num_train=args.num_train, num_test=args.num_test)
    scores = metrics_lib.evaluate(metrics_lib.representation(model), data, names, seed=args.seed, settings=settings)
    result = {"model": args.model_path, "dataset": args.dataset, "seed": args.seed, "settings": settings, **scores}
    if args.output:
        _write_json(result, args.output)
    print(json.dumps(result))
    return 0


def export(args):
    model = _load(args.model_path)
    path = model.export_serving(args.base_path, args.version, args.name, overwrite=args.overwrite)
    print(f"wrote {path} with signatures {', '.join(model.serving_signatures())}")
    return 0


def list_zoo(args):
    from keras_vae import zoo

    for entry in zoo.list():
        metrics = ", ".join(f"{k} {v}" for k, v in entry["metrics"].items())
        print(f"{entry['name']}: {entry['description']} ({metrics})")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from keras_vae.data import DatasetUnavailableError

    try:
        commands = {"train": train, "train-prior": train_prior, "sample": sample, "plot": plot,
                    "evaluate": evaluate, "disentanglement": disentanglement,
                    "export": export, "zoo": list_zoo}
        return commands[args.command](args)
    except (ValueError, OSError, DatasetUnavailableError) as err:  # OSError: unwritable paths and the like
        print(f"keras-vae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
