"""Model zoo: importing a family file registers its variants.

Importing this package imports torch; the CLI imports it only inside commands.
"""

from clsctl.models._factory import (MODELS, ModelEntry, create_model, list_models, model_info, random_weights_warning,
                                    register_model, register_prefix)
from clsctl.models._meta import (HubOrigin, LayerGroups, ModelLayout, ModelMeta, PretrainedWeights,
                                 TimmOrigin)

# Family files register their variants on import; timm_models and hub_models register the ``timm/`` and
# ``hf-hub:`` name prefixes (neither imports timm or huggingface_hub until such a model is asked for).
from clsctl.models import (  # noqa: E402,F401  isort: skip
    convnext, densenet, efficientnet, efficientnet_v2, hub_models, inception, lenet, mnasnet, mobilenet_v2,
    mobilenet_v3, mobileone, regnet, repvgg, res2net, resnet, resnet_cifar, se_resnet, shufflenet_v1, shufflenet_v2,
    swin, timm_models, vgg, vit,
)

__all__ = ["MODELS", "HubOrigin", "LayerGroups", "ModelEntry", "ModelLayout", "ModelMeta", "PretrainedWeights",
           "TimmOrigin", "create_model", "list_models", "model_info", "random_weights_warning", "register_model",
           "register_prefix"]
