"""Background rules: the paper's grey-level rule and the CIELAB colour rule, their thresholds, cleaning and keys."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsbench.data import background as bg
from wsbench.data import create_dataset
from wsbench.data.cache import prepare
from wsbench.data.io import read_mask
from wsbench.errors import UserError
from wsbench.evaluate import IoUSweep
from wsbench.recipes import RECIPES, Recipe, recipe_record

BELT = (67, 67, 67)
BLUE = (40, 50, 210)  # grey level 65 (0.299 R + 0.587 G + 0.114 B): 2 from the belt's 67, another hue


def _write_one_object_video(root: Path, paint, frames: int = 5, size: int = 64) -> Path:
    """A flat belt with one object moving 10 px a frame (so the median is the belt); GT = the object's box."""
    for label in ("before", "after"):
        for t in range(frames):
            frame = np.full((size, size, 3), BELT, np.uint8)
            mask = np.zeros((size, size), np.uint8)
            if label == "before":
                box = np.s_[20:30, 5 + 10 * t:17 + 10 * t]  # 10 rows x 12 columns = 120 pixels
                frame[box] = paint(frame[box])
                mask[box] = 255
                (root / "masks" / label / "v0").mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / "masks" / label / "v0" / f"f{t}.png"), mask)
            (root / label / "v0").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / label / "v0" / f"f{t}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (root / "splits.json").write_text(json.dumps({"train": ["before/v0", "after/v0"], "val": [], "test": []}))
    return root


def _recall(root: Path, cache: Path, **options) -> tuple[int, int]:
    """(GT pixels inside the cached foreground, GT pixels) over the before video, through prepare()."""
    index = create_dataset("video-folder", root=root)
    data = prepare(index, (32, 32), cache, background=Recipe(**options))
    pos = next(i for i, v in enumerate(index.videos) if v.label == "before")
    video = index.videos[pos]
    sweep = IoUSweep()
    for t in range(len(video)):
        fg = data.fg_full(pos, t)
        sweep.add(np.zeros(fg.shape, np.float32), fg, read_mask(video.masks[t], (fg.shape[1], fg.shape[0])))
    return int(sweep.pos.sum()), sweep.gt


def test_object_of_the_belts_grey_level_is_lost_by_the_grey_rule_and_kept_by_the_colour_rule(tmp_path):
    """Hand count: 5 frames x one 10 x 12 blue box = 600 GT pixels; its grey level is 65 on a belt of 67."""
    assert cv2.cvtColor(np.array([[BLUE]], np.uint8), cv2.COLOR_RGB2GRAY)[0, 0] == 65
    root = _write_one_object_video(tmp_path / "blue", lambda region: np.array(BLUE, np.uint8))
    kept_gray, gt = _recall(root, tmp_path / "c")
    kept_lab, _ = _recall(root, tmp_path / "c", bg_rule="lab")
    assert gt == 600
    assert kept_gray == 0  # |65 - 67| = 2 grey levels, far under 22: all belt to the paper's rule
    assert kept_lab == 600  # delta E about 60: all foreground, and the cleaning keeps a 10 x 12 box whole
    assert _recall(root, tmp_path / "c", bg_rule="lab", bg_threshold_mode="otsu") == (600, 600)


def test_an_object_cut_into_strips_survives_the_colour_rules_cleaning(tmp_path):
    """A bright print with 2-row belt-grey stripes: rows 0-1, 4-5, 8-9 of the box are 200, rows 2-3, 6-7 belt grey.

    The paper's open-then-close erases strips 2 px tall (0 of 600 GT pixels kept); closing first
    joins them across the 2-row gaps (all 600 kept). The GT is the whole box, stripes included.
    """
    def striped(region):
        out = np.full_like(region, 200)
        out[2:4] = BELT
        out[6:8] = BELT
        return out

    root = _write_one_object_video(tmp_path / "striped", striped)
    assert _recall(root, tmp_path / "c") == (0, 600)
    assert _recall(root, tmp_path / "c", bg_morph=0) == (360, 600)  # no cleaning: the three strips, 3 x 2 x 12 x 5
    assert _recall(root, tmp_path / "c", bg_rule="lab") == (600, 600)


def _lab_reference(rgb: np.ndarray) -> np.ndarray:
    """sRGB (uint8) -> CIELAB with the D65 white OpenCV uses: the textbook formulas, in numpy."""
    c = rgb.astype(np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    xyz = linear @ m.T / np.array([0.950456, 1.0, 1.088754])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_delta_e_matches_an_independent_cie76_formula_on_random_colours():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    ours = bg.delta_e(bg.to_lab(a, (30, 20)), bg.to_lab(b, (30, 20)))
    reference = np.sqrt(((_lab_reference(a) - _lab_reference(b)) ** 2).sum(-1))
    assert ours.shape == (20, 30) and ours.dtype == np.float32
    # OpenCV's float conversion interpolates its gamma curve: within 0.5 delta E (a just-noticeable one is ~2.3)
    np.testing.assert_allclose(ours, reference, atol=0.5)
    assert ours.max() > 50  # the colours are far apart, so the tolerance is small beside the values
    lab = bg.to_lab(np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8), (2, 1))
    np.testing.assert_allclose(lab[0, :, 0], [100, 0], atol=0.01)  # L is 0..100


def test_otsu_threshold_agrees_with_opencv_and_splits_two_modes():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(8, 3, 3000), rng.normal(90, 15, 1000)]).clip(0, 255).astype(np.uint8)
    cv_threshold, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    boundary = bg.otsu_threshold(values, 256)  # integer values: upper class is values >= boundary
    assert boundary - 1 == cv_threshold  # OpenCV's: upper class is values > threshold
    assert 20 < boundary < 70
    assert bg.otsu_threshold(np.full(10, 5.0), 100.0) == 100.0  # one bin: nothing to split


def test_rules_are_validated_and_named_in_the_cache():
    assert bg.BackgroundRule().cache_name() == "bg22-m3"  # the paper's rule: the cache folder it always had
    assert bg.BackgroundRule("lab").cache_name() == "lab10-m3"
    assert bg.BackgroundRule("lab", threshold_mode="otsu").cache_name() == "lab10-m3-otsu"
    with pytest.raises(UserError, match="--bg-rule must be one of gray, lab"):
        bg.BackgroundRule("hsv")
    with pytest.raises(UserError, match="--bg-lab-threshold must be a colour distance"):
        Recipe(bg_lab_threshold=float("nan"))
    with pytest.raises(UserError, match="--bg-threshold-mode must be fixed or otsu"):
        Recipe(bg_threshold_mode="median")


def test_rule_enters_config_hash_classifier_key_and_cache_but_the_default_keeps_old_keys(video_folder, tmp_path):
    from types import SimpleNamespace

    from wsbench.classifiers import classifier_key
    from wsbench.files import config_hash
    from wsbench.methods import create_method
    from wsbench.pipeline import RunSpec, resolve

    cpu = RECIPES["cpu"].recipe()
    # the paper's rule records the recipe exactly as runs recorded it before the rules existed
    assert "bg_rule" not in recipe_record(cpu) and "bg_lab_threshold" not in recipe_record(cpu)
    assert set(recipe_record(cpu)) | {"bg_rule", "bg_lab_threshold", "bg_threshold_mode"} == set(cpu.__dict__)
    lab = RECIPES["cpu"].recipe(bg_rule="lab")
    assert recipe_record(lab)["bg_rule"] == "lab" and recipe_record(lab)["bg_lab_threshold"] == 10.0

    def run_hash(**recipe):
        spec = RunSpec(method="cam", dataset="video-folder", data_root=str(video_folder), recipe_name="cpu",
                       recipe=recipe)
        return resolve(spec, "cpu").config

    default = run_hash()
    assert "bg_rule" not in default["recipe"]
    assert run_hash(bg_lab_threshold=12.0)["config_hash"] == default["config_hash"]  # unused by the gray rule
    hashes = {default["config_hash"], run_hash(bg_rule="lab")["config_hash"],
              run_hash(bg_rule="lab", bg_lab_threshold=12.0)["config_hash"],
              run_hash(bg_threshold_mode="otsu")["config_hash"]}
    assert len(hashes) == 4
    assert run_hash(bg_rule="lab")["recipe"]["bg_rule"] == "lab"

    data = SimpleNamespace(path=Path("cache") / "belt-0123" / "frames", index=None)
    cam = create_method("cam")
    assert config_hash(classifier_key(cam, cpu, data, 0)) != config_hash(classifier_key(cam, lab, data, 0))

    index = create_dataset("video-folder", root=video_folder)
    paper = prepare(index, (32, 32), tmp_path / "c", background=cpu)
    colour = prepare(index, (32, 32), tmp_path / "c", background=lab)
    otsu = prepare(index, (32, 32), tmp_path / "c", background=RECIPES["cpu"].recipe(bg_threshold_mode="otsu"))
    assert paper.path.name == "32x32-bg22-m3" and colour.path.name == "32x32-lab10-m3"
    meta = json.loads((otsu.path / "meta.json").read_text())
    assert meta["bg_threshold_mode"] == "otsu" and all("bg_threshold" in v for v in meta["videos"])
    assert otsu.bg_thresholds == [v["bg_threshold"] for v in meta["videos"]]
    assert "bg_rule" not in json.loads((paper.path / "meta.json").read_text())


def test_grey_matched_belt_variant_defeats_the_grey_rule_and_not_the_colour_rule():
    """``wsbench data synth --grey-matched 1``: every illegal object in the belt's grey level."""
    import dataclasses

    from wsbench.data.synthetic import BeltConfig, generator_tag, render_pair

    base = BeltConfig(train_videos=1, val_videos=0, test_videos=0, frames=16, size=(96, 96), seed=3)
    assert "grey_matched_prob" not in base.to_dict()  # the default belt keeps its name and manifest
    matched = dataclasses.replace(base, grey_matched_prob=1.0)
    assert generator_tag(matched) != generator_tag(base) and matched.to_dict()["grey_matched_prob"] == 1.0
    assert BeltConfig.from_dict(matched.to_dict()) == matched
    before, _ = render_pair(matched, 0)
    assert before.illegal.sum() > 1000
    recalls = {}
    for rule in ("gray", "lab"):
        rule_ = bg.BackgroundRule(rule)
        background = rule_.fit([rule_.convert(f, (96, 96)) for f in before.frames])
        fg = np.stack([background.mask(f) for f in before.frames]).astype(bool)
        recalls[rule] = (fg & before.illegal).sum() / before.illegal.sum()
    assert recalls["gray"] < 0.5 and recalls["lab"] > 0.9, recalls
    # stripes draw only when asked for (the hand case above measures what they do to the cleaning)
    striped = dataclasses.replace(base, grey_stripes_prob=1.0)
    assert not np.array_equal(render_pair(striped, 0)[0].frames, render_pair(base, 0)[0].frames)


def test_contact_sheet_shows_what_each_rule_keeps(tmp_path):
    """Tiles: frame, gray keeps, lab keeps, background class, GT; the blue box is black in the grey rule's tile."""
    from wsbench.data.preview import contact_sheet

    root = _write_one_object_video(tmp_path / "blue", lambda region: np.array(BLUE, np.uint8))
    out = contact_sheet(create_dataset("video-folder", root=root), tmp_path / "sheet.png", videos=1, frames=1,
                        size=64, rule=bg.BackgroundRule("lab"))
    sheet = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (2 * (64 + 16), 5 * 64, 3)  # before and after rows, five tiles each
    box = np.s_[16 + 21:16 + 29, 6:16]  # frame 0's box, inside its edges, in the first row's tiles
    gray_tile, lab_tile = sheet[:, 64:128][box], sheet[:, 128:192][box]
    assert gray_tile.max() == 0 and np.abs(lab_tile.astype(int) - BLUE).max() <= 2
    assert sheet[:, 192:256][box].max() == 0  # the lab rule's background image has the box blacked out
