"""``tcam``: temporal max-pooling CAM, a flow-free temporal baseline beside Frame-to-Frame.

For frame t the map is the pixel-wise maximum of the CAMs of frames t−n … t, taken as they are:
no optical flow, no warping, only frames already seen (causal, as on a running belt). This is the
CAM temporal max-pooling of T-CAM (Belharbi et al., WACV 2023) applied at inference to the plain
``cam`` classifier, so it trains nothing of its own and shares that classifier with ``cam``,
``gradcam`` and ``f2f``. Against ``f2f`` it measures what the flow is worth: on a moving belt an
unwarped neighbour's activation lies where the object *was*, so a large ``--frames`` smears maps
along the motion. The default n = 2 had the best validation IoU of n ∈ {1, 2, 4} on a small
synthetic belt (commands and numbers in this plugin's README).

Written against wsbench's public method API only (:class:`wsbench.methods.Method`,
:class:`wsbench.methods.Fusion`); the evaluator does the pooling.
"""

from __future__ import annotations

import dataclasses

from wsbench.methods import Fusion, Method, register_method

__all__ = ["TemporalMaxCam", "TCamOptions"]


@dataclasses.dataclass(frozen=True)
class TCamOptions:
    """Options of ``tcam`` (each becomes a ``wsbench run --method tcam`` option)."""

    frames: int = dataclasses.field(default=2, metadata={"help": "previous frames n pooled with frame t"})

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError("--frames must be at least 1")


@register_method("tcam", trains=False, needs_video=True,
                 description="T-CAM: pixel-wise max over the CAMs of the previous n frames, no flow (plugin)")
class TemporalMaxCam(Method):
    """CAM of the ``cam`` classifier, max-pooled over the previous ``frames`` frames without warping."""

    Options = TCamOptions

    def classifier(self) -> tuple[str, dict]:
        """Inference-only: the maps come from the plain ``cam`` classifier."""
        return "cam", {}

    def fusion(self) -> Fusion:
        """Max over frames t−n … t, unwarped and causal."""
        return Fusion(self.options.frames, "max", warp=False, causal=True)
