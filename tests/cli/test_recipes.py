"""clsctl print-config and recipe-schema."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from clsctl.cli.main import app

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_print_config_resolves_bases_and_overrides(runner: CliRunner) -> None:
    result = runner.invoke(app, ["print-config", str(RECIPES / "resnet50.yaml"), "--set", "optim.lr=0.05",
                                 "-s", "data.train.pipeline.1.prob=0"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.output)
    assert data["optim"]["lr"] == 0.05 and data["data"]["train"]["pipeline"][1]["prob"] == 0
    assert data["schedule"]["milestones"] == [30, 60, 90] and "base" not in data


def test_print_config_errors(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: {name: resnet50}\noptim: {type: sgdd, lr: 1}\ndata: {}\n")
    result = runner.invoke(app, ["print-config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'bad.yaml'}: optim: unknown type 'sgdd'; did you mean 'sgd'?" in " ".join(result.output.split())


def test_recipe_schema(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = runner.invoke(app, ["recipe-schema", "--out", str(out)])
    assert result.exit_code == 0
    schema = json.loads(out.read_text())
    assert schema["additionalProperties"] is False
    assert {"model", "data", "optim"} <= set(schema["required"])
    printed = json.loads(runner.invoke(app, ["recipe-schema"]).output)
    assert printed == schema
