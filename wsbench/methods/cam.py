"""``cam``: the class activation map of a classifier trained with the classification loss only.

The map is ReLU(f[before]) divided by its maximum (paper eq. 8), read off the class maps in one
forward pass. This is the "None" column of the paper's ablation (Table 2). GradCAM and
Frame-to-Frame do not explain this classifier: they explain a standard classifier (global average
pooling + linear head) trained apart, as in the paper, so GradCAM − CAM compares two classifiers.
"""

from __future__ import annotations

from . import register_method
from .base import Method

__all__ = ["Cam"]


@register_method("cam", display_name="CAM", description="CAM of a classifier trained with the classification loss only")
class Cam(Method):
    """Plain CAM: L_cls for training (eq. 5), ReLU(f[before]) / max for maps (eq. 8).

    Everything else it does is the :class:`~wsbench.methods.base.Method` default.
    """

    def modules(self) -> tuple[bool, bool] | None:
        """Neither module: the ablation's "None" column."""
        return False, False
