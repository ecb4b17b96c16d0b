"""Named training recipes: listing, choice, overrides, suites, and unchanged config hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wsbench.cli import cli
from wsbench.errors import UserError
from wsbench.recipes import RECIPES, Recipe, choose_recipe


def test_paper_recipe_is_the_recipe_defaults_and_cpu_is_the_belts():
    assert RECIPES["paper"].recipe() == Recipe()
    cpu = RECIPES["cpu"].recipe()
    assert (cpu.backbone, cpu.output_stride, cpu.image_size, cpu.epochs, cpu.batch_size, cpu.lr) == \
        ("wsbench_resnet_tiny", 8, (96, 96), 8, 32, 2e-3)


def test_options_override_the_named_recipe():
    recipe, name, note = choose_recipe("smoke", "paper", {"epochs": 3, "image_size": [40, 48], "lr": None}, "cpu")
    assert name == "smoke" and note is None
    assert recipe.epochs == 3 and recipe.image_size == (40, 48) and recipe.backbone == "wsbench_resnet_tiny"
    assert recipe.lr == RECIPES["smoke"].recipe().lr  # None means "not given"


def test_paper_default_is_not_taken_silently_on_a_cpu():
    recipe, name, note = choose_recipe(None, "paper", {}, "cpu")
    assert name == "cpu" and recipe == RECIPES["cpu"].recipe()
    assert "'paper'" in note and "--recipe paper" in note and "\n" not in note
    # asked for by name, with pretrained weights, or on a GPU: the paper's recipe, no note
    assert choose_recipe("paper", "paper", {}, "cpu")[1:] == ("paper", None)
    assert choose_recipe(None, "paper", {"pretrained": "timm"}, "cpu")[1:] == ("paper", None)
    assert choose_recipe(None, "paper", {}, "cuda")[1:] == ("paper", None)
    assert choose_recipe(None, "cpu", {}, "cpu")[1:] == ("cpu", None)


def test_unknown_recipe_name_or_option_is_one_line():
    with pytest.raises(UserError, match="unknown recipe 'fast'; available: paper, cpu, smoke"):
        choose_recipe("fast", "paper", {})
    with pytest.raises(UserError, match="unknown recipe option 'epoch'"):
        choose_recipe("cpu", "paper", {"epoch": 2})


def test_belt_config_hashes_are_unchanged(video_folder, monkeypatch):
    """The resolved fields are hashed, not the name: whichever name (or none) gives the belt's recipe,
    the hash is the same. Pinned: a change of these digests retires every finished belt run, so it
    must be deliberate (last: tccam's clip starts move every epoch and its options gained
    temporal_background, so its finished runs, trained with fixed clip starts, retire; tccam before:
    f09534928276. Earlier: alpha_max, beta_max and weight_ramp left the recipe for puzzlecam's and tccam's
    options, the cpu recipe's beta_max 12 becoming its default for tccam; before: 1e56f351c073, b2102bb6b626,
    10a7e17c413d, 8aa0e3b3542a)."""
    import wsbench.pipeline as pipeline
    from wsbench.data.video_folder import read_video_folder

    # the hash does not depend on the frames; skip generating the default belt
    monkeypatch.setattr(pipeline, "create_dataset",
                        lambda *a, **k: read_video_folder(video_folder, name="synthetic-belt"))
    expected = {("cam", None): "0cd6f984d3f0", ("tccam", None): "4509941db98e",
                ("puzzlecam", None): "21a021d538a0", ("cam", False): "ebe19a8c1a3c"}
    for (method, bg), digest in expected.items():
        recipe = {} if bg is None else {"background_removal": bg}
        for name, device in ((None, None), (None, "cpu"), ("cpu", "cuda")):
            resolved = pipeline.resolve(pipeline.RunSpec(method=method, dataset="synthetic-belt", recipe=recipe,
                                                         recipe_name=name), device)
            assert resolved.config["config_hash"] == digest, (method, bg, name, device)
            assert resolved.config["recipe_name"] == "cpu" and resolved.recipe_note is None
            if method == "tccam":  # the cpu recipe's default for tccam's beta, in its options
                assert resolved.method.options.beta_max == 12.0 and "beta_max" not in resolved.config["recipe"]


def test_loss_weights_are_part_of_their_methods_classifier_key_only():
    """A different beta retrains tccam's classifier, never the ones cam, gradcam and puzzlecam share."""
    from types import SimpleNamespace

    from wsbench.classifiers import classifier_key
    from wsbench.files import config_hash
    from wsbench.methods import create_method

    recipe = RECIPES["cpu"].recipe()
    data = SimpleNamespace(path=Path("cache") / "belt-0123" / "frames", index=None)  # what the key reads

    def key(method, **options):
        return config_hash(classifier_key(create_method(method, **options), recipe, data, 0))

    for beta in (2.0, 12.0):
        assert key("tccam", temporal=False, beta_max=beta) == key("puzzlecam")
        assert key("tccam", spatial=False, temporal=False, beta_max=beta) == key("cam")
    assert key("tccam", beta_max=2.0) != key("tccam", beta_max=12.0)
    assert key("tccam", spatial=False, alpha_max=1.0) == key("tccam", spatial=False)  # alpha unused there
    assert key("puzzlecam", alpha_max=2.0) != key("puzzlecam")
    assert key("gradcam") == key("f2f")
    # a recipe that sets tccam's beta (cpu) and one that does not (smoke) differ in tccam's options only
    assert RECIPES["cpu"].options_for("tccam") == {"beta_max": 12.0}
    assert all(not RECIPES[r].options_for(m) for r in RECIPES for m in ("cam", "gradcam", "f2f", "puzzlecam"))
    # on the command line the loss weights are the methods' own options
    result = CliRunner().invoke(cli, ["run", "-m", "cam", "--beta-max", "2"])
    assert result.exit_code == 2 and "option --beta-max is not taken by method 'cam'" in result.output


def test_recorded_recipes_of_older_runs_still_load():
    """Runs recorded before the loss weights moved to the methods hold them in their recipe."""
    import dataclasses

    from wsbench.recipes import recorded_fields

    old = dataclasses.asdict(RECIPES["cpu"].recipe()) | {"alpha_max": 4.0, "beta_max": 12.0, "weight_ramp": "ramp"}
    assert Recipe(**{**recorded_fields(old), "image_size": tuple(old["image_size"])}) == RECIPES["cpu"].recipe()
    assert recorded_fields({"epochs": 3}) == {"epochs": 3}
    with pytest.raises(UserError, match="loss weights are options of the methods .* --beta-max"):
        choose_recipe("cpu", "paper", {"beta_max": 2.0})


def test_list_recipes_and_datasets_show_recipes():
    runner = CliRunner()
    listed = runner.invoke(cli, ["list", "recipes"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split()[0] for line in lines] == list(RECIPES)
    assert "--backbone resnet50" in lines[0] and "--image-size 512x512" in lines[0] and "--epochs 25" in lines[0]
    assert lines[1].endswith("; tccam --beta-max 12.0]") and "tccam" not in lines[0] + lines[2]
    datasets = runner.invoke(cli, ["list", "datasets"]).output
    assert "recipe: cpu]" in next(line for line in datasets.splitlines() if line.startswith("synthetic-belt"))
    assert "recipe: paper]" in next(line for line in datasets.splitlines() if line.startswith("video-folder"))


@pytest.mark.slow
def test_run_on_cpu_says_which_recipe_and_estimates_time(video_folder, tmp_path):
    runner = CliRunner()
    args = ["run", "-m", "cam", "-d", "video-folder", "--data-root", str(video_folder), "--runs-dir",
            str(tmp_path / "runs"), "--device", "cpu", "--image-size", "32", "--epochs", "1"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "training recipe 'cpu'" in notes[0]
    assert "estimate: training takes about" in result.stderr
    import json

    (config,) = (tmp_path / "runs").glob("*/config.json")
    config = json.loads(config.read_text())
    assert config["recipe_name"] == "cpu" and config["recipe"]["batch_size"] == 32
    assert config["recipe"]["epochs"] == 1 and config["device"] == "cpu" and config["workers"] == 0
    quiet = runner.invoke(cli, [*args, "-q", "--recipe", "smoke"])
    assert quiet.exit_code == 0 and not quiet.stderr, quiet.stderr


def test_suite_spec_takes_a_recipe_name(tmp_path):
    from wsbench.suite import _specs, load_spec

    spec = tmp_path / "s.toml"
    spec.write_text('recipe = "smoke"\n[[runs]]\nmethod = "cam"\n[[runs]]\nmethod = "cam"\n'
                    'recipe = { name = "cpu", epochs = 2 }\n')
    loaded = load_spec(spec)
    (_, a), (_, b) = list(_specs(loaded, [0], {}))
    assert (a.recipe_name, a.recipe) == ("smoke", {})
    assert (b.recipe_name, b.recipe) == ("cpu", {"epochs": 2})
    spec.write_text('recipe = "fast"\n[[runs]]\nmethod = "cam"\n')
    with pytest.raises(UserError, match="recipe: unknown recipe 'fast'"):
        load_spec(spec)


def test_recipe_options_are_generated_from_the_recipe_fields():
    """Each Recipe field is one `wsbench run` option (its metadata the help), parsed to the field's type."""
    import dataclasses

    from wsbench.cli import recipe_from, run_cmd

    fields = [f.name for f in dataclasses.fields(Recipe)]
    names = {p.name for p in run_cmd.params}
    assert set(fields) <= names and not {"alpha_max", "beta_max", "weight_ramp"} & names
    helps = {p.name: p.help for p in run_cmd.params}
    assert all(helps[f.name] == f.metadata["help"] for f in dataclasses.fields(Recipe))
    given = dict.fromkeys(fields) | {"image_size": "40x48", "output_stride": "8", "augment": False, "other": 1}
    assert recipe_from(given) == {"image_size": (40, 48), "output_stride": 8, "augment": False}
    assert given == {"other": 1}  # the recipe options were popped, the rest left
    bad = CliRunner().invoke(cli, ["run", "-m", "cam", "--bg-morph", "300"])
    assert bad.exit_code == 2 and "--bg-morph" in bad.output
