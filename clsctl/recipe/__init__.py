"""Recipes: the pydantic schema and the loader."""

from clsctl.recipe.load import apply_override, deep_merge, load_recipe, validate_recipe
from clsctl.recipe.schema import Recipe

__all__ = ["Recipe", "apply_override", "deep_merge", "load_recipe", "validate_recipe"]
