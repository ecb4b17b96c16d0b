"""torchvision's RAFT as a flow estimator, with weights from a local file only (never downloaded).

torch and torchvision are imported when a RAFT estimator is built, not when this module is.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from ..files import load_torch, state_dict_of
from .base import check_pair, register_flow

if TYPE_CHECKING:
    import torch

__all__ = ["RAFT_WEIGHTS_ENV", "RaftFlow", "raft_cache_path"]

RAFT_WEIGHTS_ENV = "WSBENCH_RAFT_WEIGHTS"

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
            from ..device import resolve_device

            self.device = resolve_device(str(device))
        self.model_name = model
        self.num_flow_updates = num_flow_updates
        self.weights_path = _find_raft_weights(model, weights)

        build, _ = _raft_builder(model)
        net = build(weights=None, progress=False)  # weights=None: never downloads
        label = "flow 'raft': weights "
        state = state_dict_of(load_torch(self.weights_path, label), self.weights_path, label,
                              keys=("model", "state_dict"))
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"flow 'raft': weights {str(self.weights_path)!r} do not fit {model}: {first}") from None
        self.net = net.eval().to(self.device)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Flow from each ``src[i]`` to ``dst[i]`` in one batch (arguments and result: :class:`FlowEstimator`)."""
        import torch
        import torch.nn.functional as F

        check_pair(src, dst)
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
