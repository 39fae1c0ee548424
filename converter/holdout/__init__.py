"""The second renderer: conveyor frames drawn by code written separately from the training simulator.

**Evaluation only.** Nothing on the training path (``converter.synth``, ``converter.dataset``,
``converter.train``, ``converter.augment``, ``converter.model``, ``edge.simulator``) may import it,
and nothing it renders is used for training, validation or choosing a threshold: it answers "how
does the model do on frames nobody tuned it on?". ``tests/test_holdout.py`` enforces the import rule.

It shares no drawing code or parameter ranges with :mod:`edge.simulator`: cookies are irregular
polygons drawn with Pillow at twice the size and reduced, belts are striped and speckled, the
camera rotates the whole picture, and light, blur, noise and JPEG are its own. Frames are 320x240 to
800x600, as cameras deliver them. It labels frames by the same written alert spec
(docs/alert-spec.md), measured with its own code.
"""

from converter.holdout.cases import HARD_CASES, holdout_set, render_case
from converter.holdout.draw import HoldoutFrame, render_frame
from converter.holdout.stream import HoldoutStream, Script

__all__ = ["HARD_CASES", "HoldoutFrame", "HoldoutStream", "Script", "holdout_set", "render_case", "render_frame"]
