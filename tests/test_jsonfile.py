"""Tests for clsctl.jsonfile."""

from __future__ import annotations

import pytest

from clsctl.errors import ClsctlError, DataError
from clsctl.jsonfile import read_json_file


def test_reads_a_json_document(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text('{"class_names": ["cat", "dog"], "n": 2}', encoding="utf-8")
    assert read_json_file(path, what="predictions file") == {"class_names": ["cat", "dog"], "n": 2}


def test_missing_file_names_what_and_path(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(ClsctlError, match=r"annotation file not found: .*absent\.json"):
        read_json_file(path, what="annotation file")


def test_invalid_json_raises_the_requested_error_type(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json is not a JSON file \(.*line 1"):
        read_json_file(path, what="annotation file", error=DataError)


def test_binary_file_is_reported_not_crashed(tmp_path):
    path = tmp_path / "image.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ClsctlError, match="is not a JSON file"):
        read_json_file(path, what="predictions file")
