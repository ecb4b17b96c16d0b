"""Multi-process training: the shard sampler, sharded augmentation, and torchrun with gloo on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import RandomSampler

from wsbench.data.augment import augment
from wsbench.distributed import ShardSampler

ROOT = Path(__file__).resolve().parents[1]


def test_shard_sampler_one_rank_is_random_sampler_order():
    ours = list(ShardSampler(23, 5, torch.Generator().manual_seed(3)))
    theirs = list(RandomSampler(range(23), generator=torch.Generator().manual_seed(3)))
    assert ours == theirs[:20]  # four full batches of 5; the incomplete last one is dropped


def test_shard_sampler_ranks_split_each_global_batch():
    one = list(ShardSampler(30, 6, torch.Generator().manual_seed(1)))
    r0 = list(ShardSampler(30, 3, torch.Generator().manual_seed(1), rank=0, world=2))
    r1 = list(ShardSampler(30, 3, torch.Generator().manual_seed(1), rank=1, world=2))
    assert len(r0) == len(r1) == 15 and not set(r0) & set(r1)
    for k in range(5):  # step k of the two ranks together is step k of one process
        assert r0[3 * k:3 * k + 3] + r1[3 * k:3 * k + 3] == one[6 * k:6 * k + 6]


def test_augment_shards_equal_the_whole_batch():
    images = torch.rand(4 * 3, 3, 32, 32) * 255  # 4 clips of 3 frames
    flows = torch.randn(4, 3, 2, 2, 8, 8)
    whole, whole_flows = augment(images, flows, torch.Generator().manual_seed(5), clip_len=3)
    parts = [augment(images[6 * r:6 * r + 6], flows[2 * r:2 * r + 2], torch.Generator().manual_seed(5),
                     clip_len=3, shard=(r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole)
    assert torch.equal(torch.cat([p[1] for p in parts]), whole_flows)


def _run(launcher: list[str], data_root: Path, runs: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               WSBENCH_PROGRESS="0", OMP_NUM_THREADS="1")
    args = ["run", "--method", "tccam", "--dataset", "video-folder", "--data-root", str(data_root),
            "--backbone", "wsbench_resnet_tiny_gn", "--output-stride", "8", "--image-size", "64", "--epochs", "1",
            "--weight-ramp", "constant", "--optimizer", "sgd", "--lr", "0.01", "--batch-size", "16", "--device", "cpu",
            "--quiet", "--runs-dir", str(runs), "--cache-dir", str(cache)]
    return subprocess.run([sys.executable, *launcher, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_two_gloo_processes_match_one_process(tiny_belt, tmp_path):
    """Two ranks with half the batch each train the same model as one process, within tolerance.

    Sampling and augmentation are identical by construction (see the tests above) and DDP averages
    the two half-batch mean gradients into the full-batch mean. The backbone uses GroupNorm, so no
    layer depends on which frames share a batch (with BatchNorm each rank would normalise by its own
    half: SyncBatchNorm is CUDA-only). What still differs: float summation order, and the temporal
    loss, which is normalised by the valid-pixel count of each rank's clips rather than of all
    clips. Measured: the two results are 3 % of the training's weight change apart (without the
    gradient averaging, 77 %), so we require less than 10 %. SGD, because Adam's per-parameter
    normalisation turns rounding-level gradient differences of near-zero gradients into full steps.
    """
    cache = tmp_path / "cache"
    one = _run(["-m", "wsbench"], tiny_belt, tmp_path / "one", cache)
    two = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "wsbench"],
                   tiny_belt, tmp_path / "two", cache)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("run record:") == 1  # only rank 0 prints and records
    assert "Grad strides do not match" not in two.stderr  # parameters and DDP buckets share one layout
    runs = [p for p in (tmp_path / "two").iterdir() if p.name != "classifiers"]
    assert len(runs) == 1 and (runs[0] / "result.json").exists()

    def weights(root: Path) -> dict[str, torch.Tensor]:
        (final,) = (root / "classifiers").glob("*/final.pt")
        return torch.load(final, map_location="cpu", weights_only=True)

    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    from wsbench.checkpoint import seed_all as _seed_all
    from wsbench.data.torch_data import classes_for
    from wsbench.model import build_model
    from wsbench.recipes import Recipe

    _seed_all(0)
    w0 = build_model(Recipe(backbone="wsbench_resnet_tiny_gn", output_stride=8), classes_for(True)).state_dict()
    params = [k for k, v in w1.items() if v.is_floating_point() and "running" not in k]
    moved = torch.cat([(w1[k] - w0[k]).flatten() for k in params]).norm()
    apart = torch.cat([(w1[k] - w2[k]).flatten() for k in params]).norm()
    assert moved > 0 and apart < 0.1 * moved, (float(apart), float(moved))

    logs = [(root / "classifiers").glob("*/log.csv") for root in (tmp_path / "one", tmp_path / "two")]
    rows = [next(g).read_text().splitlines() for g in logs]
    assert len(rows[0]) == len(rows[1])  # the same number of steps
    res = json.loads((runs[0] / "result.json").read_text())
    assert res["metrics"]["iou_illegal"] is not None



def test_augment_shifts_the_flow_field_with_the_frames():
    """Two motion regions: after augmentation the region seen in the frames and in the flow coincide."""
    h = w = 64
    region = torch.zeros(h, w)
    region[8:40, 4:28] = 1.0  # moves right; the rest of the belt stands still
    images = (region * 250).expand(2 * 3, 3, h, w).clone()  # 2 clips of 3 frames
    cells = torch.nn.functional.avg_pool2d(region[None, None], 4)[0, 0]
    flows = torch.zeros(2, 3, 2, 2, h // 4, w // 4)
    flows[:, :, :, 0] = 2.0 * cells  # u = 2 px inside the region, 0 outside
    moved = 0
    for seed in range(8):
        out, out_flows = augment(images, flows, torch.Generator().manual_seed(seed), clip_len=3)
        seen = torch.nn.functional.avg_pool2d((out[:, :1] > 0).float(), 4)[:, 0] > 0.5
        moving = out_flows[:, :, 0, 0].abs().flatten(0, 1) > 1.0
        assert torch.equal(seen, moving), f"seed {seed}: flow field not aligned with the shifted frames"
        moved += int(not torch.equal(seen[0], cells > 0.5) and not torch.equal(seen[0], (cells > 0.5).flip(-1)))
    assert moved, "no draw shifted the clip: the test would not see a misalignment"
