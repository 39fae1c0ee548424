"""Camera-side cost per frame for MJPEG cameras, against the model's inference, at 640x480 and 1280x720.

    python benchmarks/camera.py MODEL.tflite [DEPLOYED.tflite] [FRAMES]    (prints one JSON object)

Frames come from the simulator, encoded as a UVC camera sends them (JPEG quality 85, 4:2:2) into a
raw MJPEG stream file. Per frame, measured interleaved (round-robin blocks, median):

* ``read``: OpenCV hands over the undecoded JPEG (FFmpeg backend, ``CAP_PROP_FORMAT = -1``; a V4L2
  camera with ``CAP_PROP_CONVERT_RGB = 0`` copies its buffer out the same way);
* ``decode``: libjpeg-turbo via simplejpeg, in full and at the reduced scale that keeps the frame's
  shorter side >= 2 x 64 px (whole-frame ROI) or >= 64 px, and OpenCV's own decode for comparison;
* ``preprocess``: crop + nearest-neighbour 64x64 + input quantization (edge.preprocess);
* ``inference``: one invoke of the model(s) given, 1 thread, batch 1.

Also the effect of reduced-scale decoding on the model: the largest change of the alert
probability and the agreement of decisions at 0.5 against full decoding, over the frames.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.jpeg import JpegDecoder, scale_for
from edge.preprocess import INPUT_SIZE, model_input
from edge.simulator import still_frame

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
QUALITY, SUBSAMPLING = 85, "422"


def _median_ms(fns: dict[str, Callable[[], object]], rounds: int = 7, block_s: float = 0.02) -> dict[str, float]:
    calls = {}
    for name, fn in fns.items():
        fn()
        start = time.perf_counter()
        fn()
        calls[name] = max(3, int(block_s / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name] * 1000.0)
    return {name: statistics.median(values) for name, values in samples.items()}


def _stream(path: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    import simplejpeg

    rng = np.random.default_rng(7)
    frames = [still_frame(rng, alert=i % 2 == 1, size=size) for i in range(count)]
    with path.open("wb") as out:
        for frame in frames:
            out.write(simplejpeg.encode_jpeg(frame, quality=QUALITY, colorspace="RGB", colorsubsampling=SUBSAMPLING))
    return frames


class _Looping:
    """An OpenCV capture of a raw MJPEG stream file that starts again at the end (such files cannot seek)."""

    def __init__(self, path: Path, raw: bool) -> None:
        self.path, self.raw = path, raw
        self.cap = self._open()

    def _open(self) -> Any:
        import cv2

        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if self.raw:
            cap.set(cv2.CAP_PROP_FORMAT, -1)
        return cap

    def read(self) -> Any:
        ok, data = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = self._open()
            ok, data = self.cap.read()
        return data

    def close(self) -> None:
        self.cap.release()


def _classifier(path: Path) -> Any:
    from edge.inference import Classifier, load_runtime
    from edge.model_choice import VARIANT_SUFFIX

    return Classifier.from_files(path, load_runtime("auto"), 1, 1, integer_only=not path.name.endswith(VARIANT_SUFFIX))


def _rgb_read(reader: Any) -> object:
    return np.ascontiguousarray(reader.read()[:, :, ::-1])


def measure(model: Path, deployed: Path | None, count: int) -> dict[str, Any]:
    import cv2

    classifiers = {"int8": _classifier(model)}
    if deployed is not None and deployed != model:
        classifiers["deployed"] = _classifier(deployed)
    card = classifiers["int8"].card
    result: dict[str, Any] = {"jpeg": {"quality": QUALITY, "subsampling": SUBSAMPLING}, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in SIZES.items():
            stream = Path(tmp) / f"{label}.mjpeg"
            _stream(stream, size, count)
            cap = cv2.VideoCapture(str(stream), cv2.CAP_FFMPEG)
            cap.set(cv2.CAP_PROP_FORMAT, -1)
            packets: list[npt.NDArray[np.uint8]] = []
            while True:
                ok, packet = cap.read()
                if not ok:
                    break
                packets.append(np.asarray(packet, np.uint8))
            cap.release()
            raw_reader = _Looping(stream, raw=True)
            decoded_reader = _Looping(stream, raw=False)

            sides = {"full": None, "min_side_128": 2 * INPUT_SIZE, "min_side_64": INPUT_SIZE}
            decoders = {name: JpegDecoder(side) for name, side in sides.items()}
            packet = packets[0]
            frame = decoders["full"].decode(packet)
            fns: dict[str, Callable[[], object]] = {
                "read_undecoded": raw_reader.read,
                "read_opencv_decoded_rgb": partial(_rgb_read, decoded_reader),
                **{f"decode_{name}": partial(d.decode, packet) for name, d in decoders.items()},
                "preprocess": partial(model_input, frame, card.input.scale, card.input.zero_point, card.input.dtype),
            }
            batches = {name: np.zeros((1, *c.card.input.shape[1:]), c.card.input.dtype) for name, c in classifiers.items()}
            for name, c in classifiers.items():
                fns[f"inference_{name}"] = partial(c.classify, batches[name])
            ms = _median_ms(fns)
            raw_reader.close()
            decoded_reader.close()
            scales = {name: scale_for(size[0], size[1], side) for name, side in sides.items()}
            camera_side = {name: ms["read_undecoded"] + ms[f"decode_{name}"] + ms["preprocess"] for name in sides}
            result["sizes"][label] = {"ms": ms, "scale_divisor": scales, "camera_side_ms": camera_side,
                                      "camera_side_opencv_ms": ms["read_opencv_decoded_rgb"] + ms["preprocess"],
                                      "bytes_per_frame": int(np.mean([p.size for p in packets])),
                                      "model_effect": _model_effect(classifiers["int8"], packets, decoders)}
    return result


def _model_effect(classifier: Any, packets: list[np.ndarray], decoders: dict[str, JpegDecoder]) -> dict[str, Any]:
    card = classifier.card
    probs: dict[str, list[float]] = {name: [] for name in decoders}
    for packet in packets:
        for name, decoder in decoders.items():
            tensor = model_input(decoder.decode(packet), card.input.scale, card.input.zero_point, card.input.dtype)
            probs[name].append(float(classifier.classify(tensor[None]).alert[0]))
    full = np.asarray(probs["full"])
    return {name: {"max_abs_probability_change": float(np.max(np.abs(np.asarray(p) - full))),
                   "decision_agreement": float(np.mean((np.asarray(p) >= 0.5) == (full >= 0.5))), "frames": len(full)}
            for name, p in probs.items() if name != "full"}


def main() -> None:
    model = Path(sys.argv[1])
    deployed = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    print(json.dumps(measure(model, deployed, count)))


if __name__ == "__main__":
    main()
