"""The daemon's start-up model choice (edge.model_choice), run as the daemon runs it.

    python benchmarks/choice.py [--emulate-avx2] MODEL.tflite     (prints one JSON object)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.isa import EmulationUnavailable, emulate_avx2


def main() -> None:
    args = sys.argv[1:]
    emulated = "--emulate-avx2" in args
    model = Path(next(a for a in args if not a.startswith("--")))
    if emulated:
        try:
            emulate_avx2()
        except EmulationUnavailable as exc:
            print(json.dumps({"available": False, "why": str(exc)}))
            return
    from edge.inference import load_runtime
    from edge.model_choice import choose_classifier

    choice = choose_classifier(model, load_runtime("auto"), 1, 1, "auto")
    print(json.dumps({"available": True, "emulated": "x86-avx2" if emulated else None, "form": choice.form,
                      "reason": choice.reason, "ms_per_invoke": choice.ms_per_invoke,
                      "model": choice.classifier.model_path.name}))


if __name__ == "__main__":
    main()
