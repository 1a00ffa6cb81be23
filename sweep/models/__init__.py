"""Model registry: `build_model(arch, in_shape, num_classes, width, dropout, dropout_places)` for mlp, resnet9,
resnet50, vit (the paper's small-dataset ViT) and vit_plain (a plain ViT of the same sizes).

Every model's forward is `forward(x, ids=None)` (ids: training example ids, handed to dropout modules) and it
carries `groups` (ordered layer groups) and `head` (the classifier's module name); see `sweep.models.groups`.
Importing an architecture module registers it, so adding one is a new file plus one import line below.
"""

from sweep.models import mlp, resnet9, resnet50, vit, vit_plain  # noqa: F401  (imported for registration)
from sweep.models.groups import UnitLayer, group_names, group_of, group_state_keys, unit_layers
from sweep.models.registry import MODELS, DropoutFactory, build_model, register

__all__ = [
    "MODELS",
    "DropoutFactory",
    "UnitLayer",
    "build_model",
    "group_names",
    "group_of",
    "group_state_keys",
    "register",
    "unit_layers",
]
