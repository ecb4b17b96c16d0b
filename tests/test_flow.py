"""Tests for wsbench.flow: warping, estimators, .flo files, video flows and the flow registry."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from wsbench.errors import UserError
from wsbench.flow import (
    FLOWS,
    RAFT_WEIGHTS_ENV,
    FlowEstimator,
    create_flow,
    estimate_video_flows,
    list_flows,
    raft_cache_path,
    read_flo,
    resize_flow,
    warp,
    warp_chain,
    write_flo,
)
from wsbench.registry import UnknownEntryError
from wsbench.testing import FlowContract

SHIFT_X, SHIFT_Y = 3, 2


def constant_flow(b: int, h: int, w: int, u: float, v: float) -> torch.Tensor:
    flow = torch.empty(b, 2, h, w)
    flow[:, 0] = u
    flow[:, 1] = v
    return flow


def textured_pair(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed RGB noise and the same image moved right by SHIFT_X and down by SHIFT_Y."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(size, size, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    src = (smooth * 255).round().astype(np.uint8)
    dst = np.roll(src, shift=(SHIFT_Y, SHIFT_X), axis=(0, 1))  # dst(x + (3, 2)) = src(x)
    return src[None], dst[None]


# -- warp -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("h, w", [(1, 1), (5, 6), (7, 7), (13, 20), (16, 16)])
def test_zero_flow_is_exact_identity(h: int, w: int) -> None:
    maps = torch.randn(2, 3, h, w)
    warped, valid = warp(maps, torch.zeros(2, 2, h, w))
    assert torch.equal(warped, maps)
    assert valid.shape == (2, 1, h, w)
    assert torch.equal(valid, torch.ones(2, 1, h, w))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_zero_flow_identity_other_dtypes(dtype: torch.dtype) -> None:
    maps = torch.randn(1, 2, 9, 11).to(dtype)
    warped, valid = warp(maps, torch.zeros(1, 2, 9, 11))
    assert warped.dtype == dtype and valid.dtype == dtype
    assert torch.equal(warped, maps)


def test_integer_flow_shifts_by_hand() -> None:
    h, w = 5, 6
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    maps = (100 * ys + xs).float()[None, None]  # value encodes (y, x)
    warped, valid = warp(maps, constant_flow(1, h, w, u=2, v=1))
    # warped(y, x) = maps(y + 1, x + 2) where that exists; the last row and two columns are outside.
    expected = torch.tensor(
        [
            [102, 103, 104, 105, 0, 0],
            [202, 203, 204, 205, 0, 0],
            [302, 303, 304, 305, 0, 0],
            [402, 403, 404, 405, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.float32,
    )
    expected_valid = torch.zeros(h, w)
    expected_valid[:4, :4] = 1
    assert torch.equal(warped[0, 0], expected)
    assert torch.equal(valid[0, 0], expected_valid)


def test_negative_flow_and_out_of_range_are_invalid() -> None:
    maps = torch.arange(12.0).view(1, 1, 3, 4)
    warped, valid = warp(maps, constant_flow(1, 3, 4, u=-1, v=0))
    assert torch.equal(valid[0, 0, :, 0], torch.zeros(3))
    assert torch.equal(warped[0, 0, :, 1:], maps[0, 0, :, :3])
    warped, valid = warp(maps, constant_flow(1, 3, 4, u=50, v=0))
    assert not valid.any() and not warped.any()
    nan_flow = constant_flow(1, 3, 4, u=float("nan"), v=0)
    warped, valid = warp(maps, nan_flow)
    assert not valid.any() and torch.equal(warped, torch.zeros_like(maps))


def test_fractional_flow_bilinear_by_hand() -> None:
    maps = torch.tensor([[1.0, 2.0, 0.0], [4.0, 8.0, 0.0], [0.0, 0.0, 0.0]])[None, None]
    warped, valid = warp(maps, constant_flow(1, 3, 3, u=0.25, v=0.5))
    # pixel (0, 0) samples (x, y) = (0.25, 0.5):
    # 0.75*0.5*1 + 0.25*0.5*2 + 0.75*0.5*4 + 0.25*0.5*8 = 0.375 + 0.25 + 1.5 + 1.0
    assert warped[0, 0, 0, 0].item() == pytest.approx(3.125, abs=1e-6)
    assert valid[0, 0, 0, 0].item() == 1
    assert valid[0, 0, 2, 0].item() == 0  # y = 2.5 is below the last row


def test_warp_gradients_reach_maps() -> None:
    maps = torch.rand(2, 3, 6, 7, requires_grad=True)
    warped, valid = warp(maps, constant_flow(2, 6, 7, u=0.5, v=-1.25))
    (warped * valid).sum().backward()
    assert maps.grad is not None
    assert maps.grad.abs().sum() > 0
    assert torch.isfinite(maps.grad).all()


def test_warp_rejects_mismatched_flow() -> None:
    with pytest.raises(ValueError, match="flow must have shape"):
        warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 5))


# -- estimators: accuracy and the sign convention --------------------------------------------------
@pytest.mark.parametrize("name, options", [("dis", {}), ("dis", {"preset": "fast"}), ("farneback", {})])
def test_estimator_recovers_translation_and_convention(name: str, options: dict) -> None:
    src, dst = textured_pair()
    estimator = create_flow(name, **options)
    assert isinstance(estimator, FlowEstimator)
    flow = estimator(src, dst)
    assert flow.shape == (1, 128, 128, 2) and flow.dtype == np.float32
    interior = flow[0, 16:-16, 16:-16]
    assert np.median(interior[..., 0]) == pytest.approx(SHIFT_X, abs=0.5)
    assert np.median(interior[..., 1]) == pytest.approx(SHIFT_Y, abs=0.5)

    # End to end: a map computed from dst, warped with Flow(src, dst), reproduces src's map.
    def to_map(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames[..., 0].astype(np.float32) / 255.0)[:, None]

    flow_t = torch.from_numpy(flow).permute(0, 3, 1, 2)
    warped, valid = warp(to_map(dst), flow_t)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert valid[inner].all()
    error = (warped - to_map(src))[inner].abs().mean().item()
    wrong_sign = (warp(to_map(dst), -flow_t)[0] - to_map(src))[inner].abs().mean().item()
    assert error < 0.02
    assert error < 0.2 * wrong_sign


def test_estimator_rejects_bad_frames() -> None:
    estimator = create_flow("dis")
    with pytest.raises(ValueError, match="uint8"):
        estimator(np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="differ"):
        estimator(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 9, 3), np.uint8))


# -- resize_flow and warp_chain -------------------------------------------------------------------
def test_resize_flow_scales_vectors() -> None:
    flow = constant_flow(2, 40, 60, u=6.0, v=-4.0)
    small = resize_flow(flow, (10, 20))  # height / 4, width / 3
    assert small.shape == (2, 2, 10, 20)
    assert torch.allclose(small[:, 0], torch.full((2, 10, 20), 2.0))
    assert torch.allclose(small[:, 1], torch.full((2, 10, 20), -1.0))
    big = resize_flow(small, (40, 60))
    assert torch.allclose(big, flow)
    assert torch.equal(resize_flow(flow, (40, 60)), flow)


def test_resize_flow_keeps_a_linear_field() -> None:
    # A linear flow field stays linear; values at pixel centres follow the half-pixel convention.
    h, w = 16, 24
    xs = torch.arange(w, dtype=torch.float32).view(1, w).expand(h, w)
    flow = torch.stack((xs, torch.zeros(h, w)))[None]  # u(x) = x
    up = resize_flow(flow, (h, 2 * w))
    centres = (torch.arange(2 * w, dtype=torch.float32) + 0.5) / 2 - 0.5  # output x in input pixels
    interior = slice(2, -2)
    assert torch.allclose(up[0, 0, 0, interior], 2 * centres[interior], atol=1e-5)


def test_warp_chain_equals_warp_by_sum() -> None:
    h, w = 12, 14
    maps = torch.rand(1, 2, h, w)
    first = constant_flow(1, h, w, u=1, v=2)   # t -> t+1
    second = constant_flow(1, h, w, u=2, v=-1)  # t+1 -> t+2
    chained, chained_valid = warp_chain(maps, [first, second])
    direct, direct_valid = warp(maps, first + second)
    # Interior: exactly the single warp by the summed translation.
    assert chained_valid[..., 1:-3, 1:-3].all()
    assert torch.equal(chained[..., 1:-3, 1:-3], direct[..., 1:-3, 1:-3])
    # Chaining is stricter near borders: a trajectory that leaves frame t+1 is invalid even if it
    # ends inside frame t+2 (here rows h-2: y + 2 falls below frame t+1).
    assert (chained_valid <= direct_valid).all()
    assert not chained_valid[..., h - 2, :].any() and direct_valid[..., h - 2, :3].all()
    assert torch.equal(chained, direct * chained_valid)


def test_warp_chain_fractional_steps_are_conservative() -> None:
    h, w = 10, 10
    maps = torch.rand(1, 1, h, w)
    flows = [constant_flow(1, h, w, u=0.5, v=0), constant_flow(1, h, w, u=0.5, v=0)]
    chained, valid = warp_chain(maps, flows)
    direct, _ = warp(maps, constant_flow(1, h, w, u=1, v=0))
    # Interior: two half steps of a bilinear sample; column 8 would blend the zeroed column 9.
    assert torch.equal(valid[0, 0, :, 8:], torch.zeros(h, 2))
    assert valid[0, 0, :, :8].all()
    assert (chained[..., :8] - direct[..., :8]).abs().max() < 0.5
    assert torch.equal(warp_chain(maps, [])[0], maps)


# -- .flo files -----------------------------------------------------------------------------------
def test_flo_round_trip_exact(tmp_path) -> None:
    flow = np.random.default_rng(1).normal(size=(7, 5, 2)).astype(np.float32)
    path = tmp_path / "a.flo"
    write_flo(path, flow)
    assert path.stat().st_size == 12 + 7 * 5 * 8
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (7, 5, 2)
    assert np.array_equal(back, flow)
    write_flo(path, flow * 2)  # replaces atomically, leaves no temporary file behind
    assert np.array_equal(read_flo(path), flow * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flo"]


def test_flo_layout_is_middlebury(tmp_path) -> None:
    flow = np.array([[[1, 2], [3, 4], [5, 6]]], np.float32)  # H=1, W=3
    path = tmp_path / "b.flo"
    write_flo(path, flow)
    raw = path.read_bytes()
    assert np.frombuffer(raw[:4], "<f4")[0] == 202021.25
    assert list(np.frombuffer(raw[4:12], "<i4")) == [3, 1]
    assert list(np.frombuffer(raw[12:], "<f4")) == [1, 2, 3, 4, 5, 6]


def test_flo_bad_files(tmp_path) -> None:
    good = tmp_path / "good.flo"
    write_flo(good, np.zeros((4, 4, 2), np.float32))
    raw = good.read_bytes()

    bad_magic = tmp_path / "magic.flo"
    bad_magic.write_bytes(np.array([1.0], "<f4").tobytes() + raw[4:])
    with pytest.raises(UserError, match="not a .flo file") as err:
        read_flo(bad_magic)
    assert str(bad_magic) in str(err.value)

    truncated = tmp_path / "short.flo"
    truncated.write_bytes(raw[:-5])
    with pytest.raises(UserError, match="truncated") as err:
        read_flo(truncated)
    assert str(truncated) in str(err.value)

    header_only = tmp_path / "tiny.flo"
    header_only.write_bytes(raw[:6])
    with pytest.raises(UserError, match="truncated"):
        read_flo(header_only)

    absurd = tmp_path / "absurd.flo"
    absurd.write_bytes(raw[:4] + np.array([-3, 2_000_000], "<i4").tobytes() + raw[12:])
    with pytest.raises(UserError, match="absurd size") as err:
        read_flo(absurd)
    assert str(absurd) in str(err.value)

    with pytest.raises(UserError, match="missing.flo"):
        read_flo(tmp_path / "missing.flo")


# -- whole videos ---------------------------------------------------------------------------------
class RecordingEstimator:
    """Returns flow (src_id, dst_id) encoded from the frames' first pixel, recording batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        self.batches.append(len(src))
        out = np.empty(src.shape[:3] + (2,), np.float32)
        out[..., 0] = src[:, :1, :1, 0]
        out[..., 1] = dst[:, :1, :1, 0]
        return out


def test_estimate_video_flows_shapes_ends_and_batches() -> None:
    t_len, h, w = 7, 6, 5
    frames = np.zeros((t_len, h, w, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(1, t_len + 1)  # frame id
    recorder = RecordingEstimator()
    forward, backward = estimate_video_flows(frames, recorder, batch_size=4)
    assert forward.shape == backward.shape == (t_len, h, w, 2)
    assert forward.dtype == backward.dtype == np.float32
    assert not forward[-1].any() and not backward[0].any()
    for t in range(t_len - 1):
        assert (forward[t, ..., 0] == t + 1).all() and (forward[t, ..., 1] == t + 2).all()
    for t in range(1, t_len):
        assert (backward[t, ..., 0] == t + 1).all() and (backward[t, ..., 1] == t).all()
    assert max(recorder.batches) <= 4


def test_estimate_video_flows_real_estimator_and_short_videos() -> None:
    src, dst = textured_pair(size=64)
    frames = np.concatenate([src, dst])
    forward, backward = estimate_video_flows(frames, "dis")
    assert np.median(forward[0, 8:-8, 8:-8, 0]) == pytest.approx(SHIFT_X, abs=0.5)
    assert np.median(backward[1, 8:-8, 8:-8, 0]) == pytest.approx(-SHIFT_X, abs=0.5)
    single_f, single_b = estimate_video_flows(frames[:1], "dis")
    assert single_f.shape == (1, 64, 64, 2) and not single_f.any() and not single_b.any()


# -- registry -------------------------------------------------------------------------------------
def test_registry_names_and_errors() -> None:
    assert {"dis", "farneback", "raft"} <= set(list_flows())
    assert list_flows("far*") == ["farneback"]
    with pytest.raises(UnknownEntryError) as err:
        create_flow("nope")
    assert "dis, farneback, files, raft" in str(err.value)
    with pytest.raises(UserError, match="'dis'.*'speed'.*accepted options: preset"):
        create_flow("dis", speed=3)
    with pytest.raises(UserError, match="preset"):
        create_flow("dis", preset="slow")
    with pytest.raises(UserError, match="poly_n"):
        create_flow("farneback", poly_n=6)


# -- RAFT -----------------------------------------------------------------------------------------
@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(RAFT_WEIGHTS_ENV, raising=False)
    return hub


@pytest.fixture
def one_torch_thread():
    # RAFT on tiny inputs is dominated by thread start-up; on a busy 2-core box 2 threads are ~30x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def random_raft_weights(tmp_path_factory):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "random_raft_small.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), path)
    return path


def test_raft_missing_weights_is_a_user_error(empty_hub) -> None:
    with pytest.raises(UserError) as err:
        create_flow("raft")
    message = str(err.value)
    assert "\n" not in message
    assert RAFT_WEIGHTS_ENV in message and "weights=" in message
    assert str(empty_hub) in message and "raft_small_C_T_V2-01064c6d.pth" in message
    with pytest.raises(UserError, match="does not exist"):
        create_flow("raft", weights=empty_hub / "nothing.pth")


def test_raft_runs_with_random_weights(empty_hub, random_raft_weights, one_torch_thread) -> None:
    estimator = create_flow("raft", model="raft_small", weights=random_raft_weights, num_flow_updates=2)
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    dst = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    flow = estimator(src, dst)
    assert flow.shape == (1, 64, 64, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    # sizes that are not multiples of 8 are padded and cropped back
    odd = estimator(src[:, :44, :36], dst[:, :44, :36])
    assert odd.shape == (1, 44, 36, 2) and np.isfinite(odd).all()


def test_raft_weights_from_env_and_hub_cache(empty_hub, random_raft_weights, monkeypatch) -> None:
    monkeypatch.setenv(RAFT_WEIGHTS_ENV, str(random_raft_weights))
    assert create_flow("raft").weights_path == random_raft_weights
    monkeypatch.delenv(RAFT_WEIGHTS_ENV)
    cached = raft_cache_path("raft_small")
    assert cached.parent == empty_hub / "checkpoints"
    cached.parent.mkdir()
    cached.write_bytes(random_raft_weights.read_bytes())
    assert create_flow("raft").weights_path == cached
    with pytest.raises(UserError, match="do not fit raft_large"):
        create_flow("raft", model="raft_large", weights=cached)


# -- the flow contract, over every built-in estimator ---------------------------------------------
BUILTIN_FLOWS = [e.name for e in FLOWS.entries() if e.source == "built-in"]


class TestBuiltinFlows(FlowContract):
    """Every built-in flow estimator keeps :class:`wsbench.testing.FlowContract`.

    RAFT uses the real weights where torchvision's download left them; without them it runs on
    random weights (``accurate = False``: only the form of its output is checked).
    """

    @pytest.fixture(params=BUILTIN_FLOWS)
    def spec(self, request):
        return request.param, {}

    @pytest.fixture
    def estimator(self, spec, request):
        name, options = spec
        if name == "raft":
            if not raft_cache_path("raft_small").is_file() and not os.environ.get(RAFT_WEIGHTS_ENV):
                self.accurate = False
                options = {"weights": request.getfixturevalue("random_raft_weights"), "num_flow_updates": 2}
            request.getfixturevalue("one_torch_thread")
        return create_flow(name, **options)


def test_flow_contract_catches_a_wrong_sign_and_a_drifting_estimator() -> None:
    """The contract's checks can fail: a negated DIS breaks the convention, a constant one zero flow."""
    dis = create_flow("dis")

    class Backwards:
        """DIS with the sign flipped (the flow dst -> src)."""

        def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
            return -dis(src, dst)

    class Drifting:
        """DIS plus one pixel everywhere."""

        def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
            return dis(src, dst) + 1

    contract = FlowContract()
    contract.test_known_shift_forward_and_backward(dis)
    with pytest.raises(AssertionError, match="flow src -> dst"):
        contract.test_known_shift_forward_and_backward(Backwards())
    with pytest.raises(AssertionError):
        contract.test_identical_frames_give_zero_flow(Drifting())
