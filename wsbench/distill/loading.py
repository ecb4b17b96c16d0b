"""A finished distilled run, loaded to segment frames."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..runs import RunRecord, is_distilled
from .recipe import distill_recipe
from .segmenter import SegmenterNet

__all__ = ["DistilledRun", "distilled_record", "load_distilled"]


def distilled_record(run: str | Path, runs_dir: str | Path) -> RunRecord | None:
    """The record of ``run`` (an id in ``runs_dir`` or a run directory) when it is a distilled run, else ``None``.

    Raises:
        UserError: the run's ``config.json`` or ``result.json`` is unreadable.
    """
    path = Path(run)
    if not (path / "config.json").is_file():
        path = Path(runs_dir) / str(run)
    if not (path / "config.json").is_file():
        return None  # load_run words the error
    try:
        record = RunRecord.load(path)
    except ValueError as err:
        raise UserError(str(err)) from None
    return record if is_distilled(record.config) else None


@dataclasses.dataclass
class DistilledRun:
    """A finished distilled run, ready to segment frames.

    Attributes:
        record: its run record.
        model: the segmenter, eval mode, on ``device``.
        threshold: the val-chosen threshold on the probability of *illegal*.
        image_size: ``(w, h)`` input resolution.
        device: where it runs.
    """

    record: RunRecord
    model: SegmenterNet
    threshold: float
    image_size: tuple[int, int]
    device: torch.device

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.record.run_id

    def probabilities(self, frames: np.ndarray) -> torch.Tensor:
        """(B, 3, h, w) class probabilities of RGB uint8 frames (B, h, w, 3) at :attr:`image_size`, on the CPU."""
        from ..device import autocast, to_device

        x = to_device(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), self.device)
        with torch.inference_mode(), autocast(self.device):
            return torch.softmax(self.model(self.model.normalize(x)).float(), dim=1).cpu()

    def label_masks(self, probabilities: np.ndarray) -> np.ndarray:
        """Three-label masks from (B, 3, H, W) probabilities: *illegal* where its probability reaches
        the threshold (the evaluator's binning), else the likelier of belt and legal."""
        from ..masks import score_bins, threshold_bin

        illegal = score_bins(probabilities[:, 2]) >= threshold_bin(self.threshold)
        out = (probabilities[:, 1] > probabilities[:, 0]).astype(np.uint8)
        out[illegal] = 2
        return out

    def summary(self) -> dict[str, Any]:
        """Provenance written beside segmented masks."""
        result = self.record.result or {}
        return {"run_id": self.run_id, "method": result.get("method"), "dataset": result.get("dataset"),
                "config_hash": result.get("config_hash"), "threshold": self.threshold,
                "threshold_source": result.get("metrics", {}).get("threshold_source"),
                "segmenter": {k: self.record.config["recipe"].get(k) for k in ("architecture", "encoder")},
                "source_run": self.record.config["distill"].get("source_run"),
                "background_removal": False, "image_size": list(self.image_size)}


def load_distilled(record: RunRecord, device: str = "auto") -> DistilledRun:
    """Load a finished distilled run's segmenter.

    Raises:
        UserError: unfinished, or its weights are missing or do not fit.
    """
    from ..device import resolve_device
    from ..files import load_torch, state_dict_of

    if record.result is None:
        raise UserError(f"{record.path}: the run has not finished (no result.json); finish it with "
                        "wsbench distill ... --resume")
    recipe = distill_recipe("cpu", f"{record.path / 'config.json'}: recipe",
                            **{k: v for k, v in record.config["recipe"].items() if k != "pretrained"})
    weights = record.path / "segmenter.pt"
    state = load_torch(weights)  # before the network is built: a missing or junk file is refused at once
    net = SegmenterNet(recipe)
    try:
        net.load_state_dict(state_dict_of(state, weights))
    except (RuntimeError, TypeError, AttributeError, ValueError) as err:
        raise UserError(f"{weights}: does not fit the recorded segmenter ({type(err).__name__})") from None
    torch_device = resolve_device(device)
    net.to(torch_device).eval()
    size = record.result["distill"]["image_size"]
    return DistilledRun(record=record, model=net, threshold=float(record.result["metrics"]["threshold"]),
                        image_size=(int(size[0]), int(size[1])), device=torch_device)
