"""The flow estimator contract, its registry, and running an estimator over a whole video.

Needs numpy and the standard library only; nothing in :mod:`wsbench.flow` imports torch before it
is used, so listing flow estimators (``wsbench list flows``) stays fast.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import UserError
from ..registry import Registry

__all__ = [
    "FlowMeta",
    "FLOWS",
    "register_flow",
    "FlowEstimator",
    "create_flow",
    "list_flows",
    "check_pair",
    "flow_fingerprint",
    "estimate_video_flows",
]


# -- registry -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FlowMeta:
    """Metadata of a registered flow estimator.

    Attributes:
        description: one line shown in listings.
        learned: whether the estimator needs network weights.
    """

    description: str = ""
    learned: bool = False


FLOWS: Registry[FlowMeta] = Registry("flow", "wsbench.flows", FlowMeta)
register_flow = FLOWS.register


@runtime_checkable
class FlowEstimator(Protocol):
    """What a flow estimator is: a callable on two batches of frames.

    ``estimator(src, dst)`` takes RGB ``uint8`` arrays ``(N, H, W, 3)`` of equal shape and returns
    ``float32`` ``(N, H, W, 2)`` flow from ``src`` to ``dst`` (``src(x) ≈ dst(x + flow(x))``).
    """

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Estimate the flow from each ``src[i]`` to ``dst[i]``.

        Args:
            src: RGB ``uint8`` frames ``(N, H, W, 3)``.
            dst: RGB ``uint8`` frames of the same shape.

        Returns:
            ``float32`` flow ``(N, H, W, 2)``.
        """
        ...


def _accepted_options(obj: Any) -> list[str] | None:
    """Keyword options a factory accepts, or ``None`` if it takes ``**kwargs``."""
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds]


def create_flow(name: str, **options: Any) -> FlowEstimator:
    """Build a registered flow estimator.

    Args:
        name: registry name (see :func:`list_flows`), e.g. ``"dis"``.
        **options: the estimator's options (e.g. ``preset="fast"`` for ``dis``).

    Returns:
        The estimator instance.

    Raises:
        UnknownEntryError: ``name`` is not registered (the message lists the available flows).
        UserError: an option is not accepted by this estimator, or has a bad value.
    """
    factory = FLOWS.get(name)
    accepted = _accepted_options(factory)
    if accepted is not None:
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise UserError(
                f"flow {name!r} has no option {', '.join(map(repr, unknown))}; "
                f"accepted options: {', '.join(accepted) or 'none'}"
            )
    return factory(**options)


def list_flows(pattern: str = "*") -> list[str]:
    """Names of the registered flow estimators.

    Args:
        pattern: fnmatch pattern, e.g. ``"raft*"``.

    Returns:
        Sorted names (plugins included).
    """
    return FLOWS.list(pattern)


def check_pair(src: np.ndarray, dst: np.ndarray) -> None:
    """Refuse anything but two batches of RGB ``uint8`` frames ``(N, H, W, 3)`` of equal shape.

    Raises:
        ValueError: naming the malformed argument and what it is.
    """
    for label, arr in (("src", src), ("dst", dst)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"{label} must be RGB uint8 frames (N, H, W, 3), got {desc}")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst shapes differ: {src.shape} vs {dst.shape}")


def flow_fingerprint(name: str, options: dict[str, Any], index: Any) -> str | None:
    """Content fingerprint of the flow a data set gets from estimator ``name``, or ``None``.

    Estimators that read files (``files``) have a ``fingerprint(index)`` method; estimators that
    compute flow from the frames have none, since the frames' own fingerprint covers them.
    """
    factory = FLOWS.get(name)
    if not hasattr(factory, "fingerprint"):
        return None
    reader: Any = create_flow(name, **options)  # a file reader: more than a FlowEstimator
    return reader.fingerprint(index)


# -- whole videos -------------------------------------------------------------------------------
def estimate_video_flows(
    frames: np.ndarray, estimator: FlowEstimator | str, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Flow from every frame to its next and to its previous frame.

    Both directions are estimated (the backward flow is not the negated forward flow: they live
    on different frames and differ at occlusions). Pairs are sent to the estimator in batches of
    at most ``batch_size``.

    Args:
        frames: RGB ``uint8`` video ``(T, H, W, 3)``.
        estimator: a :class:`FlowEstimator`, or a registry name built with default options.
        batch_size: pairs per estimator call (bounds the estimator's memory).

    Returns:
        ``(forward, backward)``, each ``float32`` ``(T, H, W, 2)``: ``forward[t]`` is the flow from
        frame ``t`` to ``t+1`` and ``backward[t]`` from ``t`` to ``t-1``; ``forward[T-1]`` and
        ``backward[0]`` are zeros (no such neighbour).

    Raises:
        ValueError: malformed frames, ``batch_size < 1``, or an estimator output of the wrong shape.
    """
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4
            and frames.shape[-1] == 3):
        desc = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames must be an RGB uint8 video (T, H, W, 3), got {desc}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(estimator, str):
        estimator = create_flow(estimator)
    t_len, h, w, _ = frames.shape
    forward = np.zeros((t_len, h, w, 2), np.float32)
    backward = np.zeros((t_len, h, w, 2), np.float32)

    def run(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        out = np.asarray(estimator(src, dst))
        if out.shape != src.shape[:3] + (2,):
            expected = src.shape[:3] + (2,)
            raise ValueError(f"flow estimator {estimator!r} returned shape {out.shape}, expected {expected}")
        return out

    for start in range(0, t_len - 1, batch_size):
        stop = min(start + batch_size, t_len - 1)
        # pairs (t, t+1) for t in [start, stop): forward[t], and backward[t+1] = flow(t+1 -> t)
        forward[start:stop] = run(frames[start:stop], frames[start + 1: stop + 1])
        backward[start + 1: stop + 1] = run(frames[start + 1: stop + 1], frames[start:stop])
    return forward, backward
