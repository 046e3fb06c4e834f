"""Command line: ``python -m nucleiseg.train {unet,deepcell} --data DIR --out models/unet/NAME``.

Trains with checkpoints in ``--checkpoints`` (resumed automatically), keeps the
weights that scored best on the validation split (object mean F1 after
post-processing) and writes them with a model card.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from . import augment, model_types
from .cards import ModelError, member_cards, tuned_postprocess
from .normalization import DEFAULT_PERCENTILES
from .normalization import METHODS as NORMALIZATIONS
from .normalization import spec_for as normalization_spec
from .training import TrainConfig, check_schedule, initial_weights, split_names, train
from .training.model_card import record_invocation


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nucleiseg.train", description=__doc__)
    parser.add_argument("network", choices=model_types.names(), help="model type")
    parser.add_argument("--data", default=TrainConfig.data, help="data folder in our layout (images/, masks/, train.txt, val.txt)")
    parser.add_argument("--train", default="train", help="training split name; a+b for a union, e.g. train+val+test")
    parser.add_argument("--val", default="val",
                        help="validation split name (early stopping and model selection); 'none' for a fixed "
                             "schedule of --epochs whose last epoch is shipped (a recipe's final model on train+val+test)")
    parser.add_argument("--out", required=True, help="model path without suffix, e.g. models/unet/unet-dsb2018")
    parser.add_argument("--checkpoints", help="checkpoint folder (default: checkpoints/<name>)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even when checkpoints exist")
    parser.add_argument("--base-filters", type=int, help="U-Net top-level width (64 = the paper's; default 16, or the --init model's)")
    parser.add_argument("--crop", type=int, default=256, help="training crop edge in pixels")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="wall-clock budget; 0 for none")
    parser.add_argument("--patience", type=int, default=8, help="epochs without validation improvement before stopping")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--lr-patience", type=int, default=2, help="epochs without validation improvement before the learning rate is halved")
    parser.add_argument("--cosine", action="store_true",
                        help="decay the learning rate to 0 along half a cosine over --epochs x --steps-per-epoch "
                             "(instead of halving on plateau)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"])
    parser.add_argument("--boundary-weight", type=float, default=10.0)
    parser.add_argument("--boundary-width", type=int, default=1)
    parser.add_argument("--small-nucleus-weight", type=float, default=1.0, metavar="W",
                        help="loss weight of the pixels of whole nuclei smaller than --small-nucleus-area in a crop "
                             "(default 1: no extra weight), so the network learns to find small nuclei")
    parser.add_argument("--small-nucleus-area", type=int, default=250, metavar="PX",
                        help="area under which a nucleus counts as small for --small-nucleus-weight (default 250, "
                             "the metric's tiny bin)")
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default="percentile",
                        help="percentile (--percentiles to 0 and 1), robust (background median to 0, median nucleus "
                             "pixel to 0.5: few bright objects do not set the scale) or deepcell")
    parser.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), default=DEFAULT_PERCENTILES,
                        help="percentile normalization: the percentiles mapped to 0 and 1 (default 0.1 99.9)")
    parser.add_argument("--elastic", action="store_true", help="elastic deformation (image and labels move together)")
    parser.add_argument("--scale-jitter", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="zoom each crop by a log-uniform factor in [LOW, HIGH] (e.g. 0.5 2)")
    parser.add_argument("--gamma", action="store_true", help="random gamma and contrast curves")
    parser.add_argument("--nucleus-brightness", action="store_true", help="each nucleus dimmed or brightened by its own factor")
    parser.add_argument("--background", action="store_true", help="background offset and smooth uneven illumination")
    parser.add_argument("--blur", action="store_true", help="Gaussian defocus blur")
    parser.add_argument("--noise", action="store_true", help="Poisson-like shot noise and Gaussian read noise")
    parser.add_argument("--robust", action="store_true",
                        help="all of the above with --elastic and --scale-jitter 0.5 2 (the recipe for unseen images)")
    parser.add_argument("--augment-probability", type=float, default=0.5,
                        help="chance that each signal augmentation is applied to a crop")
    parser.add_argument("--val-images", type=int, default=0, help="validate on the first N images of the split (0: all)")
    parser.add_argument("--bright-objects", action="store_true",
                        help="a few bright nuclei or a bright speck set the scale and dim the rest (not part of --robust)")
    parser.add_argument("--blur-sigma", type=float, nargs=2, default=(0.5, 2.0), metavar=("LOW", "HIGH"),
                        help="width range of the defocus blur in pixels (default 0.5 2)")
    parser.add_argument("--blur-probability", type=float, metavar="P",
                        help="chance that the blur is applied to a crop, instead of --augment-probability")
    parser.add_argument("--blur-keep-range", action="store_true",
                        help="stretch a blurred crop back to its range before blurring, as normalizing a "
                             "blurred image does (not part of --robust)")
    parser.add_argument("--bf16", action="store_true", help="mixed bfloat16 compute, float32 weights (measure first with python -m benchmark speed training: "
                             "faster than float32 on the AMD Zen 4 CPUs of this project)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snapshots", type=int, default=1, help="ship the best N epochs as an ensemble (DeepCell default 5)")
    parser.add_argument("--average-last", type=int, default=0, metavar="N",
                        help="also average the weights of the last N epochs (batch-norm statistics measured "
                             "again on training batches) and ship the mean when it scores at least as well on "
                             "validation as the best epoch; epochs before a resume that asked for it left no "
                             "weights and are skipped")
    parser.add_argument(
        "--val-postprocess", type=Path, metavar="CARD",
        help="validate with the post-processing recorded in this model card (e.g. the model being fine-tuned) "
        "instead of the defaults",
    )
    parser.add_argument(
        "--subset-column", default="", metavar="COLUMN",
        help="use only images whose COLUMN in the data folder's manifest.csv is non-empty (e.g. bbbc039_field), "
        "in training and validation",
    )
    parser.add_argument(
        "--holdout", type=int, default=0, metavar="N",
        help="validate on N images held out of the training split (seeded) instead of --val, "
        "which then stays untouched for reporting",
    )
    parser.add_argument(
        "--export-last", action="store_true",
        help="write the last epoch's weights instead of the best on validation: a train-only run scored as the "
             "same fixed schedule on every image (--val none) will ship; run the finished command again with it "
             "and another --out to export without training",
    )
    parser.add_argument(
        "--init", type=Path, metavar="CARD",
        help="start from this model's weights (fine-tuning; same architecture) instead of random ones",
    )
    args = parser.parse_args(argv)
    if args.average_last < 0:
        parser.error(f"--average-last {args.average_last}: must be 0 (off) or a number of epochs")
    if args.average_last and args.snapshots > 1:
        parser.error("--average-last and --snapshots both choose what is shipped: give one of them")
    val_postprocess = {}
    if args.val_postprocess:
        try:
            val_postprocess = tuned_postprocess(args.val_postprocess).to_dict()
        except ModelError as error:
            parser.error(f"--val-postprocess: {error}")

    base_filters = args.base_filters or model_types.get(args.network).architecture().get("base_filters", 0)
    if args.init and not args.base_filters:
        try:
            base_filters = member_cards(args.init)[0][1]["architecture"].get("base_filters", base_filters)
        except ModelError as error:
            parser.error(f"--init: {error}")
    model_type = model_types.get(args.network)
    try:
        normalization = normalization_spec(args.normalization, tuple(args.percentiles))
    except ValueError as error:
        parser.error(f"--normalization/--percentiles: {error}")
    try:
        augmentation = augment.AugmentationConfig(
            elastic=args.elastic or args.robust,
            scale=tuple(args.scale_jitter) if args.scale_jitter else ((0.5, 2.0) if args.robust else ()),
            gamma=args.gamma or args.robust, nucleus_brightness=args.nucleus_brightness or args.robust,
            background=args.background or args.robust, blur=args.blur or args.robust,
            noise=args.noise or args.robust, probability=args.augment_probability,
            blur_sigma=tuple(args.blur_sigma), blur_keep_range=args.blur_keep_range, bright_objects=args.bright_objects,
            blur_probability=args.blur_probability)
    except ValueError as error:
        parser.error(str(error))
    try:  # TrainConfig checks its own settings (the small-nucleus weight), then the run's are checked
        config = TrainConfig(
            network=args.network,
            base_filters=base_filters,
            data=args.data,
            train_split=args.train,
            val_split=args.val,
            crop=args.crop,
            batch_size=args.batch_size,
            steps_per_epoch=args.steps_per_epoch,
            epochs=args.epochs,
            max_minutes=args.max_minutes,
            patience=args.patience,
            lr_patience=args.lr_patience,
            learning_rate=args.learning_rate or model_type.default_learning_rate,
            optimizer=args.optimizer or model_type.default_optimizer,
            class_weights=model_type.class_weights(args.boundary_weight),
            boundary_width=args.boundary_width,
            normalization=normalization,
            augmentation=augmentation,
            val_images=args.val_images,
            mixed_bfloat16=args.bf16,
            seed=args.seed,
            snapshots=args.snapshots,
            average_last=args.average_last,
            val_postprocess=val_postprocess,
            subset_column=args.subset_column,
            holdout=args.holdout,
            init_from=str(args.init) if args.init else "",
            cosine=args.cosine,
            small_nucleus_weight=args.small_nucleus_weight,
            small_nucleus_area=args.small_nucleus_area,
        )
        check_schedule(config)
        split_names(config)
        if config.init_from:
            initial_weights(config)
    except ValueError as error:  # ModelError is one too
        parser.error(str(error))
    out = Path(args.out)
    checkpoints = Path(args.checkpoints) if args.checkpoints else Path("checkpoints") / out.name
    card = train(config, out, checkpoints, resume=not args.no_resume, export_last=args.export_last)
    command = shlex.join(["python", "-m", "nucleiseg.train", *(sys.argv[1:] if argv is None else argv)])
    record_invocation(card, command, str(args.val_postprocess or ""))
    print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
