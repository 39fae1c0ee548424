"""``conveyor-convert`` / ``python -m converter``: synth, train, quantize, evaluate, build-default, keygen, bundle.

Exit codes: 0 success; 2 bad input (dataset, model, arguments); 3 the int8 gate failed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from converter import __version__
from converter.errors import ConverterError, QuantizationGateFailed
from edge.errors import EdgeError

log = logging.getLogger("converter")

DEFAULT_TRAIN, DEFAULT_TEST, DEFAULT_EPOCHS, DEFAULT_BATCH = 3000, 600, 15, 32
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "edge" / "models" / "conveyor_int8.tflite"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor-convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a simulated dataset in the training_set/ test_set/ layout")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--train", type=int, default=DEFAULT_TRAIN, help=f"training images, half per class (default {DEFAULT_TRAIN})")
    p.add_argument("--test", type=int, default=DEFAULT_TEST, help=f"test images, half per class (default {DEFAULT_TEST})")
    p.add_argument("--seed", type=int, default=7, help="seed; the same seed writes the same files")

    def data_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--data", type=Path, required=True, help="dataset folder with training_set/ and test_set/")
        q.add_argument("--positive-class", default="alert", help="class folder that means 'alert' (default alert)")
        q.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning instead of failing")

    p = sub.add_parser("train", help="train the conveyor CNN on a dataset folder")
    data_args(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the .keras model, history.json and curves PNG")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"batch size (default {DEFAULT_BATCH})")
    p.add_argument("--seed", type=int, default=42, help="seed for weights, shuffling and augmentation")

    def gate_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--calibration-samples", type=int, default=300, help="representative images, class-balanced (default 300)")
        q.add_argument("--accuracy-budget", type=float, default=0.01, help="max int8 accuracy drop vs float (default 0.01 = 1 point)")
        q.add_argument("--agreement-floor", type=float, default=0.99, help="min float/int8 agreement (default 0.99)")
        q.add_argument("--threshold", type=float, default=0.5, help="decision threshold written to the card (default 0.5)")

    p = sub.add_parser("quantize", help="full-integer int8 .tflite + model card, gated on float/int8 agreement")
    p.add_argument("--model", type=Path, required=True, help=".keras, legacy .h5, or SavedModel folder")
    data_args(p)
    gate_args(p)
    p.add_argument("--out", type=Path, required=True, help="the .tflite to write (its card goes beside it)")

    p = sub.add_parser("evaluate", help="compare the float model and the int8 model on test_set (JSON + PNG)")
    p.add_argument("--model", type=Path, required=True, help="the float model (.keras, .h5 or SavedModel folder)")
    p.add_argument("--tflite", type=Path, required=True, help="the int8 .tflite (its card beside it)")
    data_args(p)
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the card's)")
    p.add_argument("--out", type=Path, required=True, help="folder for the report")

    p = sub.add_parser("build-default", help="rebuild the bundled demo model: synth + train + quantize")
    p.add_argument("--workdir", type=Path, default=Path("build/default-model"), help="scratch folder for dataset and float model")
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL, help="where the int8 model goes")
    p.add_argument("--seed", type=int, default=7)
    from converter import bundle  # keygen, bundle: signed model bundles (no TensorFlow)

    bundle.add_parsers(sub)
    return parser


def _positive(value: int, name: str) -> None:
    if value <= 0:
        raise ConverterError(f"--{name}: expected a positive integer, got {value}")


def run(args: argparse.Namespace) -> int:
    from converter import bundle

    if args.command in bundle.COMMANDS:
        print(json.dumps(bundle.run(args)))
        return 0
    from converter.release import ReleaseOptions

    if args.command == "synth":
        from converter.synth import write_dataset

        _positive(args.train, "train")
        _positive(args.test, "test")
        counts = write_dataset(args.out, args.train, args.test, args.seed)
        print(json.dumps({"out": str(args.out), "images": counts}))
        return 0
    if args.command == "train":
        from converter.train import train

        _positive(args.epochs, "epochs")
        _positive(args.batch_size, "batch-size")
        result = train(args.data, args.out, args.epochs, args.batch_size, args.seed, args.positive_class, args.skip_bad)
        last = {k: round(v[-1], 4) for k, v in result.history.items()}
        print(json.dumps({"model": str(result.model_path), "history": str(result.history_path),
                          "curves": str(result.curves_path), "last_epoch": last}))
        return 0
    if args.command in ("quantize", "build-default"):
        from converter.release import quantize

        if args.command == "build-default":
            from converter.synth import write_dataset
            from converter.train import train

            data = args.workdir / "dataset"
            write_dataset(data, DEFAULT_TRAIN, DEFAULT_TEST, args.seed)
            trained = train(data, args.workdir / "float", DEFAULT_EPOCHS, DEFAULT_BATCH, args.seed)
            model, options = trained.model_path, ReleaseOptions(seed=args.seed)
        else:
            _positive(args.calibration_samples, "calibration-samples")
            data, model = args.data, args.model
            options = ReleaseOptions(args.calibration_samples, args.accuracy_budget, args.agreement_floor,
                                     args.threshold, args.positive_class, skip_bad=args.skip_bad)
        card = quantize(model, data, args.out, options)
        print(json.dumps({"tflite": str(args.out), "sha256": card.tflite_sha256, "size_bytes": args.out.stat().st_size,
                          "int8_accuracy": card.metrics["int8"]["accuracy"], "float_accuracy": card.metrics["float"]["accuracy"],
                          "agreement": card.metrics["agreement"]}))
        return 0
    if args.command == "evaluate":
        from converter.release import evaluate_files

        report = evaluate_files(args.model, args.tflite, args.data, args.out, args.positive_class, args.threshold, args.skip_bad)
        print(json.dumps({k: report[k] for k in ("images", "float", "int8", "agreement")}))
        return 0
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return run(args)
    except QuantizationGateFailed as exc:
        print(f"conveyor-convert: gate failed: {exc}", file=sys.stderr)
        return 3
    except (ConverterError, EdgeError) as exc:
        print(f"conveyor-convert: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conveyor-convert: interrupted", file=sys.stderr)
        return 130
