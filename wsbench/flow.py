"""Optical flow: estimators, warping of class-activation maps, and ``.flo`` files.

Flow convention (used by every function in this module)
-------------------------------------------------------
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
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from .errors import UserError
from .files import atomic_write_bytes, load_torch
from .registry import Registry

if TYPE_CHECKING:  # torch loads on first use, so listing flow estimators stays fast
    import torch

__all__ = [
    "FlowMeta",
    "FLOWS",
    "register_flow",
    "create_flow",
    "list_flows",
    "FlowEstimator",
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
    "read_flo",
    "valid_flow",
    "write_flo",
    "estimate_video_flows",
]

RAFT_WEIGHTS_ENV = "WSBENCH_RAFT_WEIGHTS"

FLO_MAGIC = 202021.25
#: Middlebury's "unknown flow" marker: a component at or above this magnitude means no flow
FLO_UNKNOWN = 1e9
_FLO_MAX_SIDE = 99999  # the limit of the Middlebury reference reader
# Slack (pixels) allowed outside the map before a sample counts as invalid; absorbs float rounding.
_VALID_TOL = 1e-3


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


def _check_pair(src: np.ndarray, dst: np.ndarray) -> None:
    for label, arr in (("src", src), ("dst", dst)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"{label} must be RGB uint8 frames (N, H, W, 3), got {desc}")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst shapes differ: {src.shape} vs {dst.shape}")


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


# -- classical estimators -----------------------------------------------------------------------
_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@register_flow("dis", description="OpenCV DIS (dense inverse search) on grayscale frames")
class DisFlow:
    """OpenCV's DIS optical flow (Kroeger et al. 2016), on grayscale versions of the frames.

    One DIS object is created per estimator and reused for every pair (it is not thread-safe:
    use one estimator per thread).

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (OpenCV's presets; slower is more
            accurate).

    Raises:
        UserError: for an unknown preset.
    """

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise UserError(f"flow 'dis': preset {preset!r} is not one of {', '.join(_DIS_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from each ``src[i]`` to ``dst[i]``; see :class:`FlowEstimator`.

        Args:
            src: RGB ``uint8`` frames ``(N, H, W, 3)``.
            dst: RGB ``uint8`` frames of the same shape.

        Returns:
            ``float32`` flow ``(N, H, W, 2)``.
        """
        _check_pair(src, dst)
        out = np.empty(src.shape[:3] + (2,), np.float32)
        for i in range(len(src)):
            out[i] = self._dis.calc(_gray(src[i]), _gray(dst[i]), None)
        return out

    def __repr__(self) -> str:
        return f"DisFlow(preset={self.preset!r})"


@register_flow("farneback", description="OpenCV Farneback polynomial-expansion flow on grayscale frames")
class FarnebackFlow:
    """OpenCV's Farneback flow (``cv2.calcOpticalFlowFarneback``) on grayscale frames.

    The pyramid scale is fixed at 0.5 (each level halves the image); ``poly_sigma`` follows
    ``poly_n`` as OpenCV's documentation recommends (1.1 for 5, 1.5 for 7).

    Args:
        levels: number of pyramid levels (including the full image); more levels follow larger
            motions. Default 4 (motions up to roughly ``winsize * 2**(levels-1) / 2`` pixels).
        winsize: averaging window in pixels; larger is smoother and more robust to noise.
        iterations: iterations per pyramid level.
        poly_n: neighbourhood of the polynomial expansion, 5 or 7.

    Raises:
        UserError: for out-of-range values.
    """

    def __init__(self, levels: int = 4, winsize: int = 15, iterations: int = 3, poly_n: int = 5) -> None:
        if poly_n not in (5, 7):
            raise UserError(f"flow 'farneback': poly_n must be 5 or 7, got {poly_n!r}")
        for label, value, low in (("levels", levels, 1), ("winsize", winsize, 3), ("iterations", iterations, 1)):
            if not isinstance(value, int) or value < low:
                raise UserError(f"flow 'farneback': {label} must be an integer >= {low}, got {value!r}")
        self.levels = levels
        self.winsize = winsize
        self.iterations = iterations
        self.poly_n = poly_n
        self._poly_sigma = 1.1 if poly_n == 5 else 1.5

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from each ``src[i]`` to ``dst[i]``; see :class:`FlowEstimator`.

        Args:
            src: RGB ``uint8`` frames ``(N, H, W, 3)``.
            dst: RGB ``uint8`` frames of the same shape.

        Returns:
            ``float32`` flow ``(N, H, W, 2)``.
        """
        _check_pair(src, dst)
        out = np.empty(src.shape[:3] + (2,), np.float32)
        for i in range(len(src)):
            out[i] = cv2.calcOpticalFlowFarneback(
                _gray(src[i]), _gray(dst[i]), None,
                0.5, self.levels, self.winsize, self.iterations, self.poly_n, self._poly_sigma, 0,
            )
        return out

    def __repr__(self) -> str:
        return (f"FarnebackFlow(levels={self.levels}, winsize={self.winsize}, "
                f"iterations={self.iterations}, poly_n={self.poly_n})")


# -- RAFT ---------------------------------------------------------------------------------------
_RAFT_MODELS = ("raft_small", "raft_large")
_RAFT_MIN_SIDE = 128  # torchvision's RAFT weights meta "min_size"; smaller inputs make it raise


def _raft_builder(model: str) -> tuple[Any, Any]:
    from torchvision.models import optical_flow as tv_flow

    if model == "raft_small":
        return tv_flow.raft_small, tv_flow.Raft_Small_Weights.DEFAULT
    return tv_flow.raft_large, tv_flow.Raft_Large_Weights.DEFAULT


def raft_cache_path(model: str) -> Path:
    """Where torchvision's own download would have cached ``model``'s default weights.

    Args:
        model: ``"raft_small"`` or ``"raft_large"``.

    Returns:
        ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>`` (may not exist).
    """
    import torch

    _, weights = _raft_builder(model)
    name = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _find_raft_weights(model: str, weights: str | os.PathLike | None) -> Path:
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"flow 'raft': weights file {str(path)!r} does not exist")
        return path
    env = os.environ.get(RAFT_WEIGHTS_ENV, "")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise UserError(f"flow 'raft': ${RAFT_WEIGHTS_ENV}={env!r} is not an existing file")
        return path
    cached = raft_cache_path(model)
    if cached.is_file():
        return cached
    raise UserError(
        f"flow 'raft': no {model} weights found (no weights= option, ${RAFT_WEIGHTS_ENV} unset, "
        f"not in the torch hub cache {str(cached)!r}); wsbench never downloads: copy torchvision's "
        f"{cached.name} there, or pass weights=PATH, or set ${RAFT_WEIGHTS_ENV}=PATH"
    )


@register_flow("raft", description="torchvision RAFT (small or large), weights from a local file", learned=True)
class RaftFlow:
    """torchvision's RAFT network, run batched on a chosen device, weights from a local file only.

    Weights are looked up in order: the ``weights`` option, the ``WSBENCH_RAFT_WEIGHTS``
    environment variable, then the file torchvision's own download would have left in the torch
    hub cache (``torch.hub.get_dir()/checkpoints/``, e.g. ``raft_small_C_T_V2-01064c6d.pth``).
    Nothing is ever downloaded. A file may hold a plain state dict or a training checkpoint with
    the state dict under ``"model"`` or ``"state_dict"``.

    Frames are converted as torchvision's ``OpticalFlow`` transform does (``uint8`` → ``[0, 1]`` →
    ``[-1, 1]``), then padded by edge replication to multiples of 8 and to at least 128 pixels per
    side (RAFT works at 1/8 resolution and its correlation pyramid needs 16 cells per side); the
    padding is split evenly between both sides, as in the original RAFT code, and the flow is
    cropped back. Tiny frames therefore cost as much as 128 × 128 ones.

    Args:
        model: ``"raft_small"`` (default; about 1M parameters, fast enough on a CPU) or
            ``"raft_large"`` (about 5M parameters, more accurate).
        weights: path to a weights file; see above for the fallbacks.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"auto"`` or a ``torch.device``.
        num_flow_updates: RAFT's recurrent refinement iterations (torchvision's default is 12).

    Raises:
        UserError: unknown model, no weights file, weights that do not fit the model, or an
            unavailable device.
    """

    def __init__(
        self,
        model: str = "raft_small",
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        num_flow_updates: int = 12,
    ) -> None:
        import torch

        if model not in _RAFT_MODELS:
            raise UserError(f"flow 'raft': model {model!r} is not one of {', '.join(_RAFT_MODELS)}")
        if not isinstance(num_flow_updates, int) or num_flow_updates < 1:
            raise UserError(f"flow 'raft': num_flow_updates must be an integer >= 1, got {num_flow_updates!r}")
        if isinstance(device, torch.device):
            self.device = device
        else:
            from .device import resolve_device

            self.device = resolve_device(str(device))
        self.model_name = model
        self.num_flow_updates = num_flow_updates
        self.weights_path = _find_raft_weights(model, weights)

        build, _ = _raft_builder(model)
        net = build(weights=None, progress=False)  # weights=None: never downloads
        state = load_torch(self.weights_path, "flow 'raft': weights ")
        if isinstance(state, dict):
            for key in ("model", "state_dict"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"flow 'raft': weights {str(self.weights_path)!r} do not fit {model}: {first}") from None
        self.net = net.eval().to(self.device)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from each ``src[i]`` to ``dst[i]`` in one batch; see :class:`FlowEstimator`.

        Args:
            src: RGB ``uint8`` frames ``(N, H, W, 3)``.
            dst: RGB ``uint8`` frames of the same shape.

        Returns:
            ``float32`` flow ``(N, H, W, 2)``.
        """
        import torch
        import torch.nn.functional as F

        _check_pair(src, dst)
        n, h, w, _ = src.shape
        if n == 0:
            return np.zeros((0, h, w, 2), np.float32)
        # RAFT works at 1/8 resolution and its 4-level correlation pyramid needs >= 16 feature cells.
        pad_h = max(_RAFT_MIN_SIDE, h + (-h % 8)) - h
        pad_w = max(_RAFT_MIN_SIDE, w + (-w % 8)) - w
        pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

        def prepare(frames: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2)
            x = (x.float() / 255.0 - 0.5) / 0.5  # torchvision's OpticalFlow transform
            return F.pad(x, pad, mode="replicate") if pad_h or pad_w else x.contiguous()

        with torch.inference_mode():
            flow = self.net(prepare(src), prepare(dst), num_flow_updates=self.num_flow_updates)[-1]
        flow = flow[:, :, pad[2]: pad[2] + h, pad[0]: pad[0] + w]
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()

    def __repr__(self) -> str:
        return (f"RaftFlow(model={self.model_name!r}, weights={str(self.weights_path)!r}, "
                f"device={str(self.device)!r}, num_flow_updates={self.num_flow_updates})")


# -- warping ------------------------------------------------------------------------------------
def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def warp(maps: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Bring maps defined on ``dst`` into ``src``'s frame: ``warped(x) = maps(x + flow(x))``.

    ``flow`` goes from src to dst (``src(x) ≈ dst(x + flow(x))``, the module's convention), so
    with ``flow = Flow(X_t, X_k)`` this warps the CAM of neighbour ``k`` into frame ``t``.
    Sampling is bilinear (``mode="nearest"``: the nearest pixel, which keeps label and bin maps
    integer, so warping commutes with thresholding); a sample point counts as valid when it lies inside the map, i.e. in
    ``[0, w-1] × [0, h-1]`` up to 1e-3 px, and ``warped`` is 0 where it is not. Pixel ``i`` sits
    at coordinate ``i`` (pixel centres), so zero flow is exactly the identity and an integer flow
    is an exact shift.

    Differentiable with respect to ``maps`` (and to ``flow`` inside the map). ``float16`` and
    ``bfloat16`` maps are sampled in ``float32`` and returned in their own dtype.

    Args:
        maps: ``(B, C, h, w)`` floating-point maps on the dst frame.
        flow: ``(B, 2, h, w)`` flow in pixels **at the maps' resolution** (use
            :func:`resize_flow` first if it was estimated on full-size frames).
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(warped, valid)``: ``warped`` ``(B, C, h, w)`` in ``maps.dtype``; ``valid``
        ``(B, 1, h, w)`` in ``maps.dtype``, 1 where the sample point was inside the map, else 0.

    Raises:
        ValueError: for mismatched shapes, non-floating maps or an unknown mode.
    """
    import torch
    import torch.nn.functional as F

    if maps.ndim != 4 or not maps.is_floating_point():
        raise ValueError(f"maps must be a floating-point (B, C, h, w) tensor, got {maps.dtype} {tuple(maps.shape)}")
    b, _, h, w = maps.shape
    if flow.shape != (b, 2, h, w):
        raise ValueError(f"flow must have shape {(b, 2, h, w)} to match maps, got {tuple(flow.shape)}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    coord_dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    flow = flow.to(device=maps.device, dtype=coord_dtype)

    xs = torch.arange(w, device=maps.device, dtype=coord_dtype).view(1, 1, w)
    ys = torch.arange(h, device=maps.device, dtype=coord_dtype).view(1, h, 1)
    px = xs + flow[:, 0]
    py = ys + flow[:, 1]
    valid = (px >= -_VALID_TOL) & (px <= w - 1 + _VALID_TOL) & (py >= -_VALID_TOL) & (py <= h - 1 + _VALID_TOL)
    # Clamping pulls the tolerance band onto the border; invalid (and NaN) points go to 0, masked below.
    zero = torch.zeros((), device=maps.device, dtype=coord_dtype)
    px = torch.where(valid, px.clamp(0, w - 1), zero)
    py = torch.where(valid, py.clamp(0, h - 1), zero)

    # grid_sample with align_corners=False maps g to pixel (g + 1) * size / 2 - 0.5. With the map
    # zero-padded (bottom/right) to power-of-two sizes, g = (2p + 1) / size - 1 and its inverse are
    # exact in floating point for integer p, so zero and integer flows reproduce pixels bit for bit;
    # for the unpadded size they round, and the 1e-7 weight error breaks exactness. Padding is never
    # sampled with a non-zero weight because points are clamped into [0, w-1] x [0, h-1].
    size_h, size_w = _next_pow2(h), _next_pow2(w)
    grid = torch.stack(((2 * px + 1) / size_w - 1, (2 * py + 1) / size_h - 1), dim=-1)
    source = maps.to(coord_dtype)
    if (size_h, size_w) != (h, w):
        source = F.pad(source, (0, size_w - w, 0, size_h - h))
    sampled = F.grid_sample(source, grid, mode=mode, padding_mode="zeros", align_corners=False)
    valid = valid.unsqueeze(1)
    warped = torch.where(valid, sampled, torch.zeros((), device=maps.device, dtype=coord_dtype))
    return warped.to(maps.dtype), valid.to(maps.dtype)


def warp_chain(maps: torch.Tensor, flows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring maps from frame ``t+k`` to frame ``t`` through one-step flows.

    ``flows[j]`` is the flow from frame ``t+j`` to frame ``t+j+1`` (so ``flows[0]`` starts at the
    target frame ``t``), all at the maps' resolution. The maps are warped successively by
    ``flows[k-1]`` (into frame ``t+k-1``), then ``flows[k-2]``, ..., then ``flows[0]``; with ``k``
    steps the result is therefore resampled ``k`` times (a little extra blur per non-integer step),
    in exchange for needing only one-step flows, which estimators get right far more often than
    long-range ones.

    Validity is conservative: the valid mask so far is warped along with the maps, and a pixel
    stays valid only where this step's sample point is inside the map *and* every pixel the
    bilinear sample touched was valid (warped mask ≈ 1). Otherwise the zeros written at invalid
    pixels would leak into valid ones.

    Args:
        maps: ``(B, C, h, w)`` floating-point maps on frame ``t+k``.
        flows: ``k`` flows ``(B, 2, h, w)``; an empty sequence returns the maps unchanged.

    Returns:
        ``(warped, valid)`` as for :func:`warp`: ``warped`` ``(B, C, h, w)`` on frame ``t``,
        ``valid`` ``(B, 1, h, w)`` 0/1 in ``maps.dtype``.

    Raises:
        ValueError: for mismatched shapes.
    """
    import torch

    current = maps
    valid = torch.ones_like(maps[:, :1])
    for step, flow in enumerate(reversed(list(flows))):
        if step == 0:
            current, valid = warp(current, flow)
            continue
        channels = current.shape[1]
        stacked, inside = warp(torch.cat((current, valid), dim=1), flow)
        current = stacked[:, :channels]
        carried = stacked[:, channels:] >= 1 - 1e-4
        valid = inside * carried.to(inside.dtype)
        current = current * valid  # zero where a blend reached an invalid pixel
    return current, valid


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a flow field to another resolution and rescale its vectors to that resolution.

    Interpolation is bilinear with pixel-centre alignment (``align_corners=False``, the convention
    :func:`warp` uses) and antialiasing: when shrinking, each output vector is a weighted mean of
    the input vectors under it (triangle filter widened by the scale factor), so no motion is
    skipped; when enlarging it is plain bilinear. ``u`` is then multiplied by ``w / W`` and ``v``
    by ``h / H``.

    Args:
        flow: ``(B, 2, H, W)`` flow in pixels of the ``H × W`` grid.
        size: target ``(h, w)``.

    Returns:
        ``(B, 2, h, w)`` flow in pixels of the ``h × w`` grid, same dtype as ``flow``.

    Raises:
        ValueError: for a malformed flow or size.
    """
    import torch
    import torch.nn.functional as F

    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (h, w), got {size!r}")
    big_h, big_w = flow.shape[-2:]
    if (h, w) == (big_h, big_w):
        return flow.clone()
    work = flow if flow.dtype == torch.float64 else flow.float()
    out = F.interpolate(work, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    scale = torch.tensor([w / big_w, h / big_h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return (out * scale).to(flow.dtype)


# -- Middlebury .flo files ----------------------------------------------------------------------
def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Format (little-endian): float32 magic ``202021.25``, int32 width, int32 height, then
    ``height × width × 2`` float32 values, row-major with ``u, v`` interleaved. Pixels with an
    unknown flow (a component that is NaN, infinite or of magnitude ≥ 1e9, Middlebury's marker)
    are returned as NaN in both components: :func:`warp` treats them as invalid.

    Args:
        path: the file.

    Returns:
        ``float32`` flow ``(H, W, 2)``.

    Raises:
        UserError: unreadable file, wrong magic number, absurd size, truncated or over-long data;
            the message names the file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read flow file {str(path)!r}: {err.strerror or err}") from None
    if len(data) < 12:
        raise UserError(f"flow file {str(path)!r} is truncated: {len(data)} bytes, less than the 12-byte header")
    where = f"flow file {str(path)!r}"
    magic = float(np.frombuffer(data, "<f4", 1, 0)[0])
    if magic != FLO_MAGIC:
        raise UserError(f"{where} is not a .flo file: magic number {magic!r}, expected {FLO_MAGIC}")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", 2, 4))
    if not (1 <= width <= _FLO_MAX_SIDE and 1 <= height <= _FLO_MAX_SIDE):
        raise UserError(f"{where} has an absurd size {width}x{height} (each side must be 1..{_FLO_MAX_SIDE})")
    expected = 12 + width * height * 8
    if len(data) < expected:
        raise UserError(f"{where} is truncated: {len(data)} bytes, a {width}x{height} flow needs {expected}")
    if len(data) > expected:
        raise UserError(f"{where} has {len(data) - expected} unexpected bytes after the {width}x{height} flow")
    flow = np.frombuffer(data, "<f4", width * height * 2, 12).reshape(height, width, 2)
    flow = flow.astype(np.float32)  # native byte order, writable copy
    flow[~valid_flow(flow)] = np.nan
    return flow


def valid_flow(flow: np.ndarray) -> np.ndarray:
    """Pixels whose flow is known: both components finite and below Middlebury's "unknown" value.

    Args:
        flow: ``(..., 2)`` flow.

    Returns:
        Boolean ``(...)``; :func:`read_flo` sets the other pixels to NaN, which :func:`warp`
        treats as invalid (no sample, ``valid = 0``).
    """
    with np.errstate(invalid="ignore"):
        return np.isfinite(flow).all(axis=-1) & (np.abs(flow) < FLO_UNKNOWN).all(axis=-1)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a Middlebury ``.flo`` file atomically (temporary file in the same folder, then rename).

    Args:
        path: destination; its folder must exist. An existing file is replaced.
        flow: ``(H, W, 2)`` flow (``u, v`` last); stored as little-endian float32.

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)`` or has an unsupported size.
        UserError: the file cannot be written.
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    if not (1 <= width <= _FLO_MAX_SIDE and 1 <= height <= _FLO_MAX_SIDE):
        raise ValueError(f"a .flo file holds 1..{_FLO_MAX_SIDE} pixels per side, got {width}x{height}")
    path = Path(path)
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    body = np.ascontiguousarray(flow, dtype="<f4").tobytes()
    try:
        atomic_write_bytes(path, header + body)
    except OSError as err:
        raise UserError(f"cannot write flow file {str(path)!r}: {err.strerror or err}") from None


# -- precomputed files --------------------------------------------------------------------------
def flo_path(root: str | os.PathLike, index: Any, video: Any, frame: int) -> Path:
    """Where the ``.flo`` file of one frame lives in a tree that mirrors the data set's frames.

    A frame file ``DATA_ROOT/<rel>/<name>.<ext>`` maps to ``root/<rel>/<name>.flo``; frames that are
    not files under the data root (video files, generated data) map to
    ``root/<label>/<video id>/<frame name>.flo``. Paths are compared as written, without resolving
    symlinks, so a frame that links to another video's file still gets its own video's place.
    ``wsbench data flow --out`` writes this tree and
    ``--flow files --flow-root`` reads it.

    Args:
        root: the flow tree's root.
        index: the :class:`~wsbench.data.VideoIndex`.
        video: one of its videos.
        frame: frame position in the video.

    Returns:
        The ``.flo`` path (which may not exist).
    """
    paths = getattr(video.frames, "paths", None)
    if paths is not None and index.root is not None:
        # symlinks are not followed: a frame linked from another video keeps its own video's place
        try:
            rel = Path(os.path.abspath(paths[frame])).relative_to(os.path.abspath(index.root))
            return Path(root) / rel.with_suffix(".flo")
        except ValueError:
            pass
    return Path(root) / video.label / video.id / f"{video.frames.names[frame]}.flo"


@register_flow("files", description="precomputed Middlebury .flo files, frame n holding the flow n -> n+1")
class FlowFiles:
    """Flows read from ``.flo`` files instead of estimated (e.g. the SERUSO/WS² authors' flows).

    The file of frame n holds the flow from frame n to frame n+1; the flow from frame n to n−1 is
    the negated file of frame n−1, as in the authors' code (exact for a constant motion, an
    approximation at occlusions). The last frame of a video needs no file. Files are read one at a
    time and resized to the requested resolution with ``u``, ``v`` rescaled (:func:`resize_flow`).

    Args:
        root: a tree mirroring the frames (see :func:`flo_path`); ``None``: the locations the data
            set's layout gives (``Video.flow_files``, e.g. SERUSO's ``optical_flows/``).
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = Path(root).expanduser() if root else None

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Not available: this estimator only reads the files of a data set's frames."""
        raise UserError("flow 'files' reads precomputed .flo files of a data set's frames; "
                        "it cannot estimate the flow between two arbitrary frames")

    def path(self, index: Any, video: Any, frame: int) -> Path:
        """The ``.flo`` file holding the flow from ``frame`` to ``frame + 1``.

        Raises:
            UserError: no ``root`` was given and the data set's layout has no flow files.
        """
        if self.root is not None:
            return flo_path(self.root, index, video, frame)
        if video.flow_files is None:
            raise UserError(f"data set {index.name!r} has no default place for .flo files; "
                            "give --flow-root DIR (a tree written by 'wsbench data flow --out DIR')")
        return Path(video.flow_files[frame])

    def fingerprint(self, index: Any) -> str:
        """Content fingerprint of the ``.flo`` files of ``index`` (path, size, mtime; never the data).

        A flow file rewritten in place changes it, so caches and classifiers built from the old
        files are not reused.
        """
        from .files import config_hash, file_stat

        stats = []
        for video in index.videos:
            for n in range(len(video) - 1):
                try:
                    path = self.path(index, video, n)
                except UserError:  # no place for flow files: reported when they are read
                    return "none"
                stats.append([os.path.abspath(path), *file_stat(path)[1:]])
        return config_hash(stats, 16)

    def video_flows(self, index: Any, video: Any, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Flows of every frame of ``video`` to its next and previous frame, at ``size``.

        Args:
            index: the data set's index.
            video: the video.
            size: ``(h, w)`` of the returned flows.

        Returns:
            ``(forward, backward)``, each ``float32`` ``(T, h, w, 2)``, zeros where the neighbour
            does not exist, NaN (invalid for :func:`warp`) where a file marks the flow unknown and
            at the resized pixels such a pixel touches (the flow cache counts them in a warning).

        Raises:
            UserError: a missing or malformed ``.flo`` file, named in the message.
        """
        import torch

        t_len = len(video)
        forward = np.zeros((t_len,) + tuple(size) + (2,), np.float32)
        for n in range(t_len - 1):
            path = self.path(index, video, n)
            if not path.is_file():
                raise UserError(f"{path}: flow file missing (the flow from frame {video.frames.names[n]} of "
                                f"{video.key} to the next frame)")
            # NaN (unknown) spreads to every resized pixel it touches: those pixels are invalid too
            flow = torch.from_numpy(read_flo(path)).permute(2, 0, 1)[None]
            forward[n] = resize_flow(flow, size)[0].permute(1, 2, 0).numpy()
        backward = np.zeros_like(forward)
        backward[1:] = -forward[:-1]
        return forward, backward

    def __repr__(self) -> str:
        return f"FlowFiles(root={str(self.root) if self.root else None!r})"


def flow_fingerprint(name: str, options: dict[str, Any], index: Any) -> str | None:
    """Content fingerprint of the flow a data set gets from estimator ``name``, or ``None``.

    Estimators that read files (``files``) have a ``fingerprint(index)`` method; estimators that
    compute flow from the frames have none, since the frames' own fingerprint covers them.
    """
    factory = FLOWS.get(name)
    if not hasattr(factory, "fingerprint"):
        return None
    return create_flow(name, **options).fingerprint(index)


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
