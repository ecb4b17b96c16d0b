"""Map production, the same for the evaluator, export, segmentation, figures and distillation.

- :class:`~wsbench.maps.producer.MapProducer`: a trained run's maps of a batch of frames, of a
  whole video (fused over neighbouring frames with the cached flow, the maps that get scored) or of
  every class of a video, with the run's inference settings fixed once; :func:`upsample`, the one
  way maps reach frame size; :func:`save_maps`, the maps of a run without GT to score them with.
- :mod:`~wsbench.maps.multiscale`: multi-scale and flip inference around any method's maps
  (``--cam-scales``/``--cam-flip``/``--cam-combine``).
- :mod:`~wsbench.maps.fusion`: temporal fusion over neighbouring frames (:func:`fuse_maps`), and
  :mod:`~wsbench.maps.stream` the same over a stream whose frames arrive one at a time (:class:`StreamFusion`).

Nothing here thresholds maps (that is :mod:`wsbench.masks`) or reads GT (that is :mod:`wsbench.evaluate`).
"""

from __future__ import annotations

from .fusion import fuse_maps, uses_raw_maps
from .multiscale import CAM_COMBINE, class_multiscale_maps, multiscale_maps, parse_scales, resize_maps
from .producer import CamInference, MapProducer, network_input, save_maps, upsample
from .protocols import MapModel, MapSource
from .stream import StreamFusion

__all__ = ["CAM_COMBINE", "CamInference", "MapModel", "MapProducer", "MapSource", "StreamFusion",
           "class_multiscale_maps", "fuse_maps", "multiscale_maps", "network_input", "parse_scales", "resize_maps",
           "save_maps", "upsample", "uses_raw_maps"]
