"""Model zoo: importing a family file registers its variants.

Importing this package imports torch; the CLI imports it only inside commands.
"""

from clsctl.models._factory import MODELS, ModelEntry, create_model, list_models, model_info, register_model
from clsctl.models._meta import ModelMeta

# Family files register their variants on import.
from clsctl.models import resnet, resnet_cifar  # noqa: E402,F401  isort: skip

__all__ = ["MODELS", "ModelEntry", "ModelMeta", "create_model", "list_models", "model_info", "register_model"]
