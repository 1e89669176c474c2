"""Backbones: modules with ``num_features`` whose forward returns pooled features (B, F).

The contract a backbone of your own (``backbone._target_=mynet.MyNet``) meets:

- required: ``num_features`` (F, an int) and ``forward``: (B, C, H, W) -> (B, F);
- optional: ``stages`` (names) and ``stage(x, index)`` (that stage's feature map), for
  ``eval.layers``; ``export_config()``, for ``RUN_DIR/export/`` and ``scripts/export.py``: a dict
  of ``architecture`` (a name its loader knows), ``model_args`` and ``state_dict``, as
  :class:`SmallCNN`'s. Without it a run trains and is evaluated as any other, and writes no
  ``export/`` (a warning says so; ``results.json`` has ``"export": null``);
  ``has_tokens`` and ``tokens(x, mask, mask_token)``, for the methods that need patch tokens
  (``Method.needs_tokens``), as :class:`TimmBackbone`'s Vision Transformers.
"""

from selfsup.backbones.small_cnn import SmallCNN
from selfsup.backbones.timm_backbone import TimmBackbone, Tokens

__all__ = ["SmallCNN", "TimmBackbone", "Tokens"]
