"""Optical flow: estimators, warping of class-activation maps, and ``.flo`` files.

Flow convention (used by every function in this package)
--------------------------------------------------------
A flow field goes **from src to dst**. For each pixel ``x = (x, y)`` of ``src``,
``flow(x) = (u, v)`` is the displacement in pixels (``u`` along x / columns, ``v`` along y / rows)
to where that point appears in ``dst``::

    src(x) ≈ dst(x + flow(x))

Consequently, anything defined on ``dst`` is brought into ``src``'s frame by *sampling it at
x + flow(x)*: ``warp(dst_map, flow) ≈ src_map``. In wsbench the central frame is ``src`` and the
neighbour is ``dst``: the estimator is called as ``Flow(X_t, X_k)`` and the neighbour's CAM is
warped into frame ``t``. This is the convention of OpenCV (``calcOpticalFlowFarneback(prev, next)``,
``DISOpticalFlow.calc(I0, I1)``) and of torchvision's RAFT (``model(image1, image2)``), so the
estimators below return their backends' output unchanged.

Arrays: frames are RGB ``uint8`` ``(N, H, W, 3)``; numpy flows are ``float32`` ``(N, H, W, 2)``
(last axis ``u, v``); torch flows are ``(B, 2, H, W)`` (channel 0 ``u``, channel 1 ``v``).

Adding an estimator
-------------------
A flow estimator is a class (or factory) registered with :func:`register_flow` — or declared in
the ``wsbench.flows`` entry-point group by a plugin — whose keyword arguments are its options and
whose instances satisfy :class:`FlowEstimator`: ``estimator(src, dst)`` on batches of frames at
training resolution returns the flow from ``src`` to ``dst`` in the convention above. wsbench
calls it once per pair of neighbouring frames (both directions, :func:`estimate_video_flows`)
when a run first needs flow (``--flow NAME``), stores the result at a quarter of the resolution
in the cache keyed by name and options, and does all warping itself (:func:`warp`).
:class:`wsbench.testing.FlowContract` checks a new estimator against this convention.

Modules
-------
:mod:`~wsbench.flow.base` the estimator contract, the registry and whole-video estimation;
:mod:`~wsbench.flow.opencv` DIS and Farneback (one base, :class:`OpenCVFlow`);
:mod:`~wsbench.flow.raft` torchvision's RAFT; :mod:`~wsbench.flow.warping` warping and resizing
flows; :mod:`~wsbench.flow.flo` Middlebury ``.flo`` files and the ``files`` estimator. Import the
public names from ``wsbench.flow`` itself; the submodules are internal.
"""

from __future__ import annotations

from .base import (
    FLOWS,
    FlowEstimator,
    FlowMeta,
    create_flow,
    estimate_video_flows,
    flow_fingerprint,
    list_flows,
    register_flow,
)
from .flo import FLO_MAGIC, FLO_UNKNOWN, FlowFiles, flo_path, read_flo, valid_flow, write_flo, write_flo_tree
from .opencv import DisFlow, FarnebackFlow, OpenCVFlow
from .raft import RAFT_WEIGHTS_ENV, RaftFlow, raft_cache_path
from .warping import resize_flow, warp, warp_chain

__all__ = [
    "FlowMeta",
    "FLOWS",
    "register_flow",
    "create_flow",
    "list_flows",
    "FlowEstimator",
    "OpenCVFlow",
    "DisFlow",
    "FarnebackFlow",
    "RaftFlow",
    "FlowFiles",
    "flo_path",
    "flow_fingerprint",
    "RAFT_WEIGHTS_ENV",
    "raft_cache_path",
    "warp",
    "warp_chain",
    "resize_flow",
    "FLO_MAGIC",
    "FLO_UNKNOWN",
    "read_flo",
    "valid_flow",
    "write_flo",
    "write_flo_tree",
    "estimate_video_flows",
]
