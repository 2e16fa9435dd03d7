"""clsctl.readers: each reader's messages name the file and say what is wrong, on one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clsctl.errors import CheckpointError, ClsctlError, DataError, RecipeError
from clsctl.readers import (check_file, load_torch_file, read_checkpoint, read_image, read_json, read_metrics_log,
                            read_recipe_yaml, read_state_dict, sniff)
from helpers import write_image_folder


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    return text


def test_check_file_missing_folder_empty(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"recipe file not found: .*nope\.yaml") as info:
        check_file(tmp_path / "nope.yaml", "recipe file", RecipeError)
    one_line(info)
    with pytest.raises(DataError, match=r"is a folder, not an image"):
        check_file(tmp_path, "image", DataError)
    (tmp_path / "e.json").write_bytes(b"")
    with pytest.raises(ClsctlError, match=r"e\.json is empty \(0 bytes\), not a predictions file"):
        check_file(tmp_path / "e.json", "predictions file")


def test_recipe_yaml_errors_are_one_line_with_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: [resnet\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"broken\.yaml: invalid YAML at line \d+, column \d+") as info:
        read_recipe_yaml(path)
    one_line(info)
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    with pytest.raises(RecipeError, match=r"0\.png is not a recipe file: not UTF-8 text \(byte 0x89 at offset 0\); "
                                          r"it looks like a PNG image"):
        read_recipe_yaml(image)
    (tmp_path / "list.yaml").write_text("- a\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"must be a mapping at the top level \(got a list\)"):
        read_recipe_yaml(tmp_path / "list.yaml")
    (tmp_path / "comments.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert read_recipe_yaml(tmp_path / "comments.yaml") == {}


def test_json_reader(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(path, what="predictions file") == {"a": [1, 2]}
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"p\.json is not a JSON file \(line 1, column 2"):
        read_json(path, what="annotation file", error=DataError)


def test_metrics_log_reader(tmp_path: Path) -> None:
    log = tmp_path / "run" / "metrics.jsonl"
    log.parent.mkdir()
    records = [{"mode": "train", "step": 1, "loss": 2.0}, {"mode": "val", "step": 1, "accuracy/top1": 50.0}]
    log.write_text("\n".join(json.dumps(r) for r in records) + '\n{"mode": "tr', encoding="utf-8")  # truncated
    assert read_metrics_log(log) == records
    assert read_metrics_log(log.parent) == records  # the run folder
    with pytest.raises(ClsctlError, match=r"is a folder without a metrics\.jsonl"):
        read_metrics_log(tmp_path)
    listed = tmp_path / "list.jsonl"
    listed.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(ClsctlError, match=r"list\.jsonl is not a metrics log .*line 1 is a list, not a JSON object"):
        read_metrics_log(listed)
    other = tmp_path / "other.jsonl"
    other.write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(ClsctlError, match=r"no record has a 'mode' key"):
        read_metrics_log(other)


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        import os

        return (os.makedirs, (self.path,))


def test_torch_files_load_weights_only_and_say_what_they_are(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Marker(tmp_path / "RAN")}, evil)
    for reader in (load_torch_file, read_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError, match=r"evil\.pt: unsafe pickle refused: .*\(os\.makedirs\)"):
            reader(evil)
    assert not (tmp_path / "RAN").exists()
    text = tmp_path / "recipe.pt"
    text.write_text("model:\n  name: test_resnet\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"recipe\.pt is not a clsctl checkpoint: not a PyTorch file; it looks "
                                              r"like text"):
        read_checkpoint(text)
    plain = tmp_path / "plain.pth"
    torch.save({"module.fc.weight": torch.ones(2, 2)}, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pth is a plain state dict, not a clsctl checkpoint: use it "
                                              r"with --model NAME --weights"):
        read_checkpoint(plain)
    assert list(read_state_dict(plain)) == ["fc.weight"]  # DDP prefix removed
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"holds no state dict of tensors \(a PyTorch file holding a list\)"):
        read_state_dict(tmp_path / "list.pt")


def test_image_reader(tmp_path: Path) -> None:
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    assert read_image(image).size == (32, 32)
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes", encoding="utf-8")
    with pytest.raises(DataError, match=r"notes\.png is not an image \(.*\); it looks like text") as info:
        read_image(fake)
    one_line(info)
    assert sniff(image) == "a PNG image" and sniff(fake) == "text"


def test_read_json_reads_a_json_document(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text('{"class_names": ["cat", "dog"], "n": 2}', encoding="utf-8")
    assert read_json(path, what="predictions file") == {"class_names": ["cat", "dog"], "n": 2}


def test_read_json_missing_file_names_what_and_path(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(ClsctlError, match=r"annotation file not found: .*absent\.json"):
        read_json(path, what="annotation file")


def test_read_json_invalid_json_raises_the_requested_error_type(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json is not a JSON file \(.*line 1"):
        read_json(path, what="annotation file", error=DataError)


def test_read_json_binary_file_is_reported_not_crashed(tmp_path):
    path = tmp_path / "image.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ClsctlError, match="is not a JSON file"):
        read_json(path, what="predictions file")
