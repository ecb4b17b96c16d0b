"""The maths of the paper's losses and schedule, on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from wsbench.losses import (
    classification_loss,
    merge,
    normalized_cams,
    ramp_weight,
    spatial_loss,
    temporal_loss,
    temporal_loss_terms,
    tile,
)
from wsbench.methods import Progress


def at(step: int, steps_per_epoch: int, total_steps: int) -> Progress:
    return Progress(epoch=step // steps_per_epoch, step=step, steps_per_epoch=steps_per_epoch, total_steps=total_steps)


def test_tile_merge_round_trip_and_order():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    tiles = tile(images)
    assert tiles.shape == (8, 1, 2, 2)
    # tile-major on the batch: all images' top-left tiles first, row-major tile order
    assert torch.equal(tiles[0], images[0, :, :2, :2]) and torch.equal(tiles[1], images[1, :, :2, :2])
    assert torch.equal(tiles[2], images[0, :, :2, 2:]) and torch.equal(tiles[4], images[0, :, 2:, :2])
    assert torch.equal(tiles[7], images[1, :, 2:, 2:])
    assert torch.equal(merge(tiles), images)


def test_spatial_loss_is_masked_mean_l1():
    f = torch.zeros(1, 3, 2, 2)
    fp = torch.zeros(1, 3, 2, 2)
    fp[0, 0] = 2.0  # differs by 2 on the labelled class
    fp[0, 1] = 5.0  # differs on an absent class: ignored
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    # PuzzleCAM's convention: mean over B x C x H x W of |f - fp| * label
    assert spatial_loss(f, fp, labels).item() == pytest.approx(2.0 * 4 / 12)


def test_classification_loss_matches_formula():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    p = torch.sigmoid(logits)
    expected = -(torch.log(p[0, 0]) + torch.log(1 - p[0, 1]) + torch.log(1 - p[0, 2])) / 3
    assert classification_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_normalized_cams():
    f = torch.tensor([[[[-1.0, 2.0], [4.0, 1.0]]]])
    assert torch.allclose(normalized_cams(f), torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]]), atol=1e-5)


def _blob(x: int) -> torch.Tensor:
    m = torch.zeros(1, 1, 6, 6)
    m[0, 0, 2:4, x:x + 2] = 1.0
    return m


def test_temporal_loss_zero_when_motion_is_compensated():
    # an object moving right by 1 px per frame; flows from t to t+1 = +1, to t-1 = -1
    centre, prev, nxt = _blob(2), _blob(1), _blob(3)
    ones = torch.ones(1, 2, 6, 6)
    to_next = ones * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    to_prev = -to_next
    labels = torch.ones(1, 1)
    assert temporal_loss_terms(centre, prev, nxt, to_prev, to_next, labels).item() == pytest.approx(0.0, abs=1e-6)
    # without compensation the maps disagree
    zero = torch.zeros(1, 2, 6, 6)
    assert temporal_loss_terms(centre, prev, nxt, zero, zero, labels).item() > 0.1


def test_temporal_loss_hand_count():
    centre = torch.zeros(1, 1, 2, 2)
    prev = torch.zeros(1, 1, 2, 2)
    nxt = torch.zeros(1, 1, 2, 2)
    nxt[0, 0, 0, 0] = 1.0  # fused map is 1 at one pixel, 0 elsewhere; centre all zero
    zero = torch.zeros(1, 2, 2, 2)
    loss = temporal_loss_terms(centre, prev, nxt, zero, zero, torch.ones(1, 1))
    # |0 - 1| at 1 of 4 valid pixels (normalised centre of zeros stays 0)
    assert loss.item() == pytest.approx(0.25, abs=1e-4)
    # three classes, only the first labelled: the same difference over B·C·h·w = 12 elements
    centre3, prev3, nxt3 = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    nxt3[0, 0, 0, 0] = 1.0
    nxt3[0, 1, 1, 1] = 1.0  # an unlabelled class: does not count
    loss3 = temporal_loss_terms(centre3, prev3, nxt3, zero, zero, torch.tensor([[1.0, 0.0, 0.0]]))
    assert loss3.item() == pytest.approx(1 / 12, abs=1e-4)


def test_temporal_loss_matches_a_restatement_in_the_authors_units():
    """Eq. 8–11 restated (every map ReLU'd and max-normalised, neighbours fused by max) with the authors'
    normalisation: L1 times the labels, mean over all B·C·h·w elements (zero flow: warping is the identity)."""
    torch.manual_seed(0)
    centre, prev, nxt = torch.randn(4, 3, 5, 6), torch.randn(4, 3, 5, 6), torch.randn(4, 3, 5, 6)
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    zero = torch.zeros(4, 2, 5, 6)

    def norm(x):
        x = x.relu()
        return x / (x.amax(dim=(2, 3), keepdim=True) + 1e-5)

    fused = torch.maximum(norm(prev), norm(nxt))
    reference = ((norm(centre) - fused).abs() * labels[:, :, None, None]).mean()
    ours = temporal_loss_terms(centre, prev, nxt, zero, zero, labels)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-4)
    # the same normalisation as the spatial loss: equal differences give equal losses
    a, b = norm(centre), fused
    assert spatial_loss(a, b, labels).item() == pytest.approx(ours.item(), rel=1e-4)


def test_temporal_loss_ignores_classes_not_in_label_and_invalid_pixels():
    centre = torch.zeros(1, 2, 1, 4)
    prev = torch.rand(1, 2, 1, 4)
    nxt = torch.rand(1, 2, 1, 4)
    nxt[:, 1] = 0
    prev[:, 1] = 0
    labels = torch.tensor([[0.0, 1.0]])  # only class 1 counts, whose neighbours are 0 like the centre
    zero = torch.zeros(1, 2, 1, 4)
    assert temporal_loss_terms(centre, prev, nxt, zero, zero, labels).item() == pytest.approx(0.0)
    # flows pointing outside the frame make every neighbour invalid: nothing to compare
    out = torch.full((1, 2, 1, 4), 10.0)
    labels = torch.tensor([[1.0, 1.0]])
    assert temporal_loss_terms(centre, prev, nxt, out, out, labels).item() == 0.0


def test_clip_and_triplet_forms_agree_on_the_same_central_frame():
    torch.manual_seed(0)
    maps = torch.randn(1, 5, 3, 4, 4)  # one clip of 5 frames
    flows = torch.randn(1, 5, 2, 2, 8, 8)
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    clip_loss = temporal_loss(maps, flows, labels)  # mean over central frames 1..3
    per_triplet = [temporal_loss(maps[:, t - 1:t + 2], flows[:, t - 1:t + 2], labels) for t in (1, 2, 3)]
    # every central frame has B·C·h·w elements, so the clip's loss is the plain mean of its triplets'
    assert clip_loss.item() == pytest.approx(sum(per_triplet).item() / 3, rel=1e-5)


def test_temporal_loss_gradients_reach_all_frames():
    maps = torch.randn(1, 3, 2, 4, 4, requires_grad=True)
    flows = torch.zeros(1, 3, 2, 2, 4, 4)
    temporal_loss(maps, flows, torch.tensor([[1.0, 0.0]])).backward()
    assert maps.grad[0, 0].abs().sum() > 0 and maps.grad[0, 2].abs().sum() > 0  # neighbours not detached


@pytest.mark.parametrize("ramp", ["ramp", "constant"])
def test_weight_schedule(ramp):
    spe, total = 10, 100  # 10 epochs of 10 steps
    w = [ramp_weight(4.0, at(s, spe, total), ramp) for s in range(total)]
    if ramp == "constant":
        assert set(w) == {4.0}
        return
    assert w[:10] == [0.0] * 10  # first epoch off
    assert w[10] == 0.0 and w[30] == pytest.approx(2.0)  # linear from end of epoch 1 ...
    assert w[50] == 4.0 and w[99] == 4.0  # ... to the max at mid-training
    assert all(a <= b for a, b in zip(w, w[1:], strict=False))


def test_weight_schedule_short_training():
    # two epochs: mid-training is inside the first epoch, so the max applies from epoch 2
    assert ramp_weight(4.0, at(5, 10, 20)) == 0.0 and ramp_weight(4.0, at(10, 10, 20)) == 4.0


# (recipe, method, steps per epoch, total steps) → {step: (alpha, beta)}: the weights the trainer's former
# loss_weight(recipe.alpha_max / beta_max, step, ...) gave, worked out by hand: 0 in epoch 1, then
# max * (step - spe) / (total / 2 - spe) up to mid-training
OLD_WEIGHTS = {
    # paper: 25 epochs of 10 steps, alpha = beta = 4; span 125 - 10 = 115
    ("paper", "tccam", 10, 250): {0: (0.0, 0.0), 9: (0.0, 0.0), 10: (0.0, 0.0), 67: (4 * 57 / 115, 4 * 57 / 115),
                                  125: (4.0, 4.0), 249: (4.0, 4.0)},
    ("paper", "puzzlecam", 10, 250): {9: (0.0, None), 67: (4 * 57 / 115, None), 200: (4.0, None)},
    # cpu: 8 epochs of 10 steps, alpha 4, beta 12; span 40 - 10 = 30
    ("cpu", "tccam", 10, 80): {5: (0.0, 0.0), 10: (0.0, 0.0), 25: (2.0, 6.0), 31: (2.8, 8.4), 40: (4.0, 12.0),
                               79: (4.0, 12.0)},
    ("cpu", "puzzlecam", 10, 80): {25: (2.0, None), 79: (4.0, None)},
}


@pytest.mark.parametrize("case", list(OLD_WEIGHTS), ids=lambda c: "-".join(map(str, c)))
def test_loss_weights_per_step_are_the_former_recipe_weights(case):
    """Moving alpha/beta from the recipe into the methods keeps every step's weights (so the metrics)."""
    from wsbench.methods import create_method
    from wsbench.recipes import RECIPES

    recipe, name, spe, total = case
    method = create_method(name, **RECIPES[recipe].options_for(name))
    for step, (alpha, beta) in OLD_WEIGHTS[case].items():
        assert method.alpha(at(step, spe, total)) == pytest.approx(alpha, abs=1e-12), (case, step)
        if beta is not None:
            assert method.beta(at(step, spe, total)) == pytest.approx(beta, abs=1e-12), (case, step)


def test_training_losses_carry_the_methods_weights():
    """The weights reach the loss terms the trainer sums: the cpu recipe's tccam at step 25 of 80."""
    from wsbench.methods import Batch, create_method
    from wsbench.model import CamNet
    from wsbench.recipes import RECIPES

    torch.manual_seed(0)
    model = CamNet("wsbench_resnet_tiny", ("before", "after", "background"), output_stride=8)
    method = create_method("tccam", clip_len=3, **RECIPES["cpu"].options_for("tccam"))
    batch = Batch(images=torch.randn(3, 3, 32, 32), labels=torch.tensor([[1.0, 0.0, 1.0]]).repeat(3, 1), clip_len=3,
                  flows=torch.zeros(1, 3, 2, 2, 8, 8))
    terms = method.training_losses(model, batch, at(25, 10, 80))
    assert (terms["spatial"].weight, terms["temporal"].weight, terms["cls"].weight) == (2.0, 6.0, 1.0)
    constant = create_method("tccam", clip_len=3, alpha_max=2.0, beta_max=6.0, weight_ramp="constant")
    terms = constant.training_losses(model, batch, at(0, 10, 80))  # the authors' code: constant from step 0
    assert (terms["spatial"].weight, terms["temporal"].weight) == (2.0, 6.0)


def test_tccam_clip_and_triplet_batching_give_the_same_temporal_loss():
    """The method end to end: one 5-frame clip vs its three triplets, the same frames and flows."""
    from wsbench.methods import Batch, create_method
    from wsbench.model import CamNet

    torch.manual_seed(0)
    model = CamNet("wsbench_resnet_tiny", ("before", "after", "background"), output_stride=8).eval()
    images = torch.randn(5, 3, 32, 32)  # eval mode: each frame's maps do not depend on its batch
    flows = torch.zeros(1, 5, 2, 2, 8, 8)
    flows[:, :, 0, 0], flows[:, :, 1, 0] = 1.0, -1.0  # 1 px to the right per frame: borders invalid
    label = torch.tensor([[1.0, 0.0, 0.0]])
    progress = Progress(epoch=1, step=10, steps_per_epoch=5, total_steps=20)
    clip = Batch(images=images, labels=label.repeat(5, 1), clip_len=5, flows=flows)
    triplets = Batch(images=torch.cat([images[t - 1:t + 2] for t in (1, 2, 3)]), labels=label.repeat(9, 1),
                     clip_len=3, flows=torch.cat([flows[:, t - 1:t + 2] for t in (1, 2, 3)]))
    clip_loss = create_method("tccam", clip_len=5).training_losses(model, clip, progress)["temporal"].value
    triplet_loss = create_method("tccam", batching="triplet").training_losses(model, triplets, progress)["temporal"]
    assert clip_loss.item() > 0
    assert clip_loss.item() == pytest.approx(triplet_loss.value.item(), rel=1e-5)
