"""Recipe loading: bases, replace, --set, validation messages."""

from pathlib import Path

import pytest
import yaml

from clsctl.errors import RecipeError
from clsctl.recipe import apply_override, deep_merge, load_recipe
from clsctl.recipe.schema import CosineSchedule, MultiStepSchedule, Recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

MINIMAL = {
    "model": {"name": "test_resnet"},
    "data": {"train": {"type": "image_folder", "root": "x", "pipeline": [{"type": "random_horizontal_flip"}]}},
    "optim": {"type": "sgd", "lr": 0.1},
}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def messages(excinfo: pytest.ExceptionInfo) -> list[str]:
    return excinfo.value.details


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert recipe.name == path.stem  # its runs go to runs/<name> unless the recipe names a folder


def test_resnet50_recipe_merges_its_bases() -> None:
    recipe = load_recipe(RECIPES / "resnet50.yaml")
    assert recipe.model.name == "resnet50"
    assert isinstance(recipe.schedule, MultiStepSchedule) and recipe.schedule.milestones == [30, 60, 90]
    assert recipe.data.loader.batch_size == 32
    assert recipe.runtime.epochs == 100 and recipe.runtime.log_interval == 100
    assert recipe.name == "resnet50" and recipe.runtime.work_dir is None  # the run goes to runs/resnet50


def test_bases_merge_in_order_and_replace_key(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {**MINIMAL, "runtime": {"epochs": 5, "seed": 1}})
    write(tmp_path / "b.yaml", {"runtime": {"epochs": 7}, "optim": {"type": "sgd", "lr": 0.2, "momentum": 0.5}})
    child = write(tmp_path / "child.yaml", {
        "base": ["a.yaml", "b.yaml"],
        "optim": {"_replace_": True, "type": "adamw", "lr": 0.001},
    })
    recipe = load_recipe(child)
    assert recipe.runtime.epochs == 7 and recipe.runtime.seed == 1  # b over a, mapping merged key by key
    assert recipe.optim.type == "adamw" and recipe.optim.lr == 0.001
    assert recipe.optim.weight_decay == 0.05  # replaced, so sgd's momentum did not leak into adamw
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_base_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"base": ["b.yaml"]})
    write(tmp_path / "b.yaml", {"base": ["a.yaml"]})
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_set_overrides_parse_yaml_and_index_lists(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", MINIMAL)
    recipe = load_recipe(path, ["optim.lr=0.05", "data.train.pipeline.0.prob=0", "runtime.epochs=3",
                                "data.mean=[0.1, 0.2, 0.3]"])
    assert recipe.optim.lr == 0.05
    assert recipe.data.train.pipeline[0].prob == 0
    assert recipe.runtime.epochs == 3
    assert recipe.data.mean == (0.1, 0.2, 0.3)


@pytest.mark.parametrize("assignment, message", [
    ("optim.lr", "expected path.to.key=value"),
    ("data.train.pipeline.5.prob=0", "no list item 5"),
    ("optim.lr.x=1", "is a value"),
    ("optim..lr=1", "empty key"),
])
def test_bad_overrides(assignment: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        apply_override({"optim": {"lr": 0.1}, "data": {"train": {"pipeline": [{}]}}}, assignment)


def test_all_problems_reported_at_once_with_paths_and_suggestions(tmp_path: Path) -> None:
    bad = {
        "model": {"name": "resnt50"},
        "data": {"train": {"type": "image_folder", "root": "x",
                           "pipeline": [{"type": "random_flip"}, {"type": "random_horizontal_flip", "prob": 2}]},
                 "loader": {"batch_sise": 4}},
        "optim": {"type": "sgd", "lr": -1},
        "schedule": {"type": "cosin"},
        "runtime": {"epochs": "ten"},
    }
    path = write(tmp_path / "bad.yaml", bad)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    lines = messages(info)
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in lines)
    body = [line[len(prefix):] for line in lines]
    assert "optim.lr: Input should be greater than 0 (got -1)" in body
    assert any(b.startswith("model.name: unknown model 'resnt50'; did you mean 'resnet50'") for b in body)
    assert any(b.startswith("data.train.pipeline.0: unknown type 'random_flip'; did you mean") for b in body)
    assert "data.train.pipeline.1.prob: Input should be less than or equal to 1 (got 2)" in body
    assert any(b.startswith("data.loader.batch_sise: unknown key 'batch_sise'; did you mean 'batch_size'?") for b in body)
    assert any(b.startswith("schedule: unknown type 'cosin'; did you mean 'cosine'?") for b in body)
    assert any(b.startswith("runtime.epochs: Input should be a valid integer") for b in body)
    assert len(lines) == 7


def test_missing_file_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(tmp_path / "list.yaml")


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    (tmp_path / "evil.yaml").write_text("model: !!python/object/apply:os.system ['echo hacked']\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(tmp_path / "evil.yaml")


def test_defaults_and_milestone_check(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", {**MINIMAL, "schedule": {"type": "cosine"}}))
    assert isinstance(recipe.schedule, CosineSchedule)
    assert recipe.loss.type == "cross_entropy" and recipe.name == "r" and recipe.runtime.work_dir is None
    with pytest.raises(RecipeError, match="after the last epoch"):
        load_recipe(write(tmp_path / "m.yaml", {**MINIMAL, "schedule": {"type": "multistep", "milestones": [50]}}))


@pytest.mark.parametrize(("value", "seconds"), [("10m", 600.0), ("1.5h", 5400.0), ("30s", 30.0), (90, 90.0),
                                                 ("2d", 172800.0), (0, 0.0)])
def test_durations_take_seconds_or_units(tmp_path: Path, value: object, seconds: float) -> None:
    from clsctl.recipe.schema import duration_seconds

    recipe = load_recipe(write(tmp_path / "r.yaml", {**MINIMAL, "runtime": {"dist_timeout": value}}))
    assert duration_seconds(recipe.runtime.dist_timeout) == seconds


def test_a_bad_duration_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(write(tmp_path / "r.yaml", {**MINIMAL, "runtime": {"dist_timeout": "ten minutes"}}))
    assert any("runtime.dist_timeout: 'ten minutes' is not a duration" in m for m in messages(excinfo))
