"""clsctl.hub: load/list/help, and the lazy ``clsctl.hub`` attribute."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import clsctl
from clsctl import hub
from clsctl.errors import UnknownNameError


def test_load_builds_a_registered_model_with_options() -> None:
    model = hub.load("test-repvgg", num_classes=3)
    assert model.linear.out_features == 3 and model.model_meta.num_classes == 3
    deployed = hub.load("test_repvgg", deploy=True)
    assert hasattr(deployed.stage1[0], "rbr_reparam")
    assert deployed(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_load_unknown_name_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'mobileone_s1'"):
        hub.load("mobilone_s1")


def test_list_and_help() -> None:
    assert hub.list("mobileone*") == [f"mobileone_s{i}" for i in range(5)]
    assert hub.list("repvgg_a*", reparameterizable=True) == ["repvgg_a0", "repvgg_a1", "repvgg_a2"]
    assert "squeeze-excitation" in hub.help("MobileOne-S4")


def test_clsctl_hub_is_the_module() -> None:
    assert clsctl.hub is hub and "hub" in dir(clsctl)


def test_clsctl_hub_attribute_does_not_import_torch() -> None:
    code = "import sys, clsctl; clsctl.hub.load; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
