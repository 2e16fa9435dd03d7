"""Checkpoints of any registered model, made without training (for the deploy tests)."""

from __future__ import annotations

from pathlib import Path

from helpers import CLASSES, tiny_recipe_dict


def randomize_batchnorm(model: object, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine weights, as training would, so that folding
    them is actually exercised (fresh BatchNorms are the identity)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():  # type: ignore[attr-defined]
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            if module.running_mean is None:
                continue
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            if module.affine:
                module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.data.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)


def make_checkpoint(tmp_path: Path, model: str = "test_resnet", name: str = "model.pt") -> Path:
    """A clsctl checkpoint of ``model`` (3 classes, random weights and BatchNorm statistics); its recipe reads
    images from ``tmp_path/data/{train,val}`` (write them with ``write_image_folder`` to test on them)."""
    from clsctl.data.preprocessing import Preprocessing
    from clsctl.engine.build import build_model
    from clsctl.engine.checkpoint import save_checkpoint
    from clsctl.recipe import validate_recipe

    data = tmp_path / "data"
    recipe_dict = tiny_recipe_dict(data, tmp_path / "run")
    recipe_dict["model"]["name"] = model
    recipe = validate_recipe(recipe_dict)
    net = build_model(recipe, len(CLASSES), load_weights=False)
    randomize_batchnorm(net)
    payload = {"model": net.state_dict(), "recipe": recipe.to_dict(), "class_names": sorted(CLASSES),  # as image folders order them
               "preprocessing": Preprocessing.from_recipe(recipe).to_dict(), "optimizer": {}, "epoch": 1}
    return save_checkpoint(payload, tmp_path / name)
