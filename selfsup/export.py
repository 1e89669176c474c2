"""The trained encoder as files any code can load: ``RUN_DIR/export/``.

- ``model.safetensors``: the weights of the encoder the evaluation measured (the online
  backbone, or the momentum teacher's with ``method.module.eval_with=teacher``); no optimiser,
  projector or predictor state.
- ``config.json``: in timm's Hugging Face layout (``architecture``, ``num_classes`` 0,
  ``model_args``, ``pretrained_cfg`` with the training normalisation and the input size
  (C, H, W), C the model's channels; and ``bit_depth``, 8 or 16: inputs are values divided by
  255 or 65535, then normalised), so ``timm.create_model(architecture, pretrained=True,
  num_classes=0, pretrained_cfg_overlay=dict(pretrained_cfg, file="export/model.safetensors"),
  **model_args)`` loads it with no missing or unexpected key, and the model's ``pretrained_cfg``
  is the export's. (With only ``file`` in the overlay, timm keeps the architecture's own
  pretrained config, ImageNet's 3 x 224 x 224 input and normalisation, and warns when loading a
  1-channel model: "input_size declares 3 source channels and the model has 1".) A backbone that
  is not a timm model (the small CNN) names ``selfsup.backbones.SmallCNN`` there;
  :func:`load_exported` builds either.
- ``README.md``: a model card (method, loss, data, epochs, metrics, how to load).
- ``model.onnx`` (``scripts/export.py RUN_DIR --onnx``): the same encoder for ONNX runtimes, input
  ``images`` (batch, C, H, W) float32 normalised as ``pretrained_cfg`` says, output ``features``
  (batch, num_features), the batch axis dynamic; checked with onnxruntime against the PyTorch
  encoder on the run's held-out images before the directory is swapped in (:func:`write_onnx`).

The directory is written beside its public name and swapped in whole (:mod:`selfsup.owned_dir`):
at every instant ``export/`` is the old complete version or the new one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from selfsup.errors import CheckpointError
from selfsup.owned_dir import owned, replacing

EXPORT = "export"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
ONNX = "model.onnx"
#: The largest absolute difference allowed between onnxruntime's features and PyTorch's.
ONNX_TOLERANCE = 1e-4


def export_encoder(
    encoder: nn.Module,
    out: Path,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: int,
    card: Mapping[str, Any],
    onnx_inputs: Tensor | None = None,
    bit_depth: int = 8,
) -> Path:
    """Write ``out/`` (replacing it whole) from ``encoder``, a backbone with ``export_config()``.

    ``out`` is replaced without a question: a caller that may refuse (a path the user named) calls
    :func:`selfsup.owned_dir.check_replaceable` first.

    Args:
        encoder: the backbone to export (``TimmBackbone`` or ``SmallCNN``).
        out: the export directory (``RUN_DIR/export``).
        mean: the per-channel mean the encoder's inputs were normalised with.
        std: the per-channel standard deviation the encoder's inputs were normalised with.
        image_size: the side of the views it was trained on.
        card: what the model card lists: ``method``, ``loss``, ``data``, ``epochs``, ``metrics``.
        onnx_inputs: also write ``model.onnx``, checked on these normalised images (:func:`write_onnx`).
        bit_depth: the bits per value of the training images (8 or 16): the encoder's input is the
            image divided by ``2**bit_depth - 1``, then normalised (``config.json``'s ``bit_depth``).
    """
    encoder = getattr(encoder, "_orig_mod", encoder)  # a torch.compile wrapper: the module inside
    if not hasattr(encoder, "export_config"):
        raise TypeError(f"{type(encoder).__name__} has no export_config(): it cannot be exported")
    spec = encoder.export_config()  # type: ignore[operator]
    state = _on_cpu(spec.pop("state_dict"))
    channels = int(spec["model_args"].get("in_chans", len(mean)))
    config = {
        **spec,
        "num_classes": 0,
        "num_features": int(encoder.num_features),  # type: ignore[arg-type]
        "bit_depth": int(bit_depth),  # not timm's: pretrained_cfg takes only timm's own keys
        "pretrained_cfg": {
            "input_size": [channels, image_size, image_size],
            "mean": [float(m) for m in mean],
            "std": [float(v) for v in std],
            "num_classes": 0,
            "classifier": None,
        },
    }
    with replacing(out, EXPORT) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        onnx = None if onnx_inputs is None else (write_onnx(encoder, tmp / ONNX, onnx_inputs), len(onnx_inputs))
        (tmp / CARD).write_text(_card(config, card, onnx))
    return out


def export_state(encoder: nn.Module) -> dict[str, Tensor]:
    """The tensors ``model.safetensors`` holds for ``encoder``."""
    encoder = getattr(encoder, "_orig_mod", encoder)
    return _on_cpu(encoder.export_config()["state_dict"])  # type: ignore[operator]


def _on_cpu(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def holds_weights(out: Path, encoder: nn.Module) -> bool:
    """Whether ``out`` is an export selfsup wrote whose weights are ``encoder``'s, tensor for tensor:
    writing it again from ``encoder`` (adding ``model.onnx``) loses nothing."""
    if not (out.is_dir() and owned(out) and (out / WEIGHTS).is_file()):
        return False
    try:
        have = load_file(str(out / WEIGHTS))
    except Exception:  # noqa: BLE001  # an unreadable file is not the same weights
        return False
    want = export_state(encoder)
    return have.keys() == want.keys() and all(torch.equal(have[k], want[k]) for k in want)


def write_onnx(encoder: nn.Module, path: Path, images: Tensor) -> float:
    """Write ``encoder`` (a float32 copy on the CPU, in eval mode) to ``path`` with torch's ONNX
    exporter (``dynamo=True``, one file, the batch axis dynamic), then run the file with
    onnxruntime on ``images`` (normalised, (B, C, H, W)) and compare with the encoder's features.

    Returns:
        The largest absolute difference.

    Raises:
        CheckpointError: the difference is above :data:`ONNX_TOLERANCE` (nothing of the caller's
            replaced directory is swapped in).
    """
    import copy

    import onnxruntime as ort

    model = copy.deepcopy(getattr(encoder, "_orig_mod", encoder)).float().cpu().eval()
    x = images.detach().float().cpu().contiguous(memory_format=torch.contiguous_format)
    if len(x) < 2:
        raise ValueError("write_onnx needs at least 2 images (the exported batch axis is dynamic)")
    with torch.no_grad():
        want = model(x)
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["images"],
            output_names=["features"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(["features"], {"images": x.numpy()})[0])
    diff = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
    if not diff <= ONNX_TOLERANCE:
        raise CheckpointError(
            f"the ONNX export differs from the PyTorch encoder by {diff:.3g} on {len(x)} held-out images "
            f"(shapes {tuple(got.shape)} and {tuple(want.shape)}; allowed {ONNX_TOLERANCE}): not written"
        )
    return diff


def export_run(
    cfg: DictConfig,
    module: Any,
    out: Path,
    epochs: int | None,
    metrics: Mapping[str, float],
    onnx_inputs: Tensor | None = None,
) -> Path:
    """:func:`export_encoder` of a run: ``module.eval_encoder`` (a :class:`~selfsup.methods.Method`'s),
    with the normalisation and view size of ``cfg`` and a card of its choices; ``model.onnx`` too
    when ``onnx_inputs`` (normalised held-out images) are given."""
    choices = cfg.get("choices") or {}
    return export_encoder(
        module.eval_encoder,
        out,
        mean=list(cfg.data.mean),
        std=list(cfg.data.std),
        image_size=int(cfg.augment.size),
        card={
            "method": cfg.method.name,
            "loss": choices.get("loss") or str(cfg.loss._target_).rsplit(".", 1)[-1],
            "data": cfg.data.name,
            "epochs": "?" if epochs is None else epochs,
            "encoder": module.eval_with,
            "metrics": metrics,
        },
        onnx_inputs=onnx_inputs,
        bit_depth=int(cfg.data.get("bit_depth", 8)),
    )


def load_exported(path: str | Path) -> nn.Module:
    """The encoder in ``path`` (an export directory), in eval mode: a timm model with
    ``num_classes=0``, or the small CNN. Features: ``model(x)``, (B, num_features)."""
    path = Path(path)
    config = json.loads((path / CONFIG).read_text())
    arch = config["architecture"]
    if arch == "selfsup.backbones.SmallCNN":
        from selfsup.backbones import SmallCNN

        model: nn.Module = SmallCNN(**config["model_args"])
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    elif config.get("cifar_stem"):  # a stem timm has no argument for: selfsup builds it
        from selfsup.backbones import TimmBackbone

        args = dict(config["model_args"])
        backbone = TimmBackbone(arch, in_chans=args.pop("in_chans", 3), cifar_stem=True, model_kwargs=args)
        backbone.model.load_state_dict(load_file(str(path / WEIGHTS)))
        model = backbone.model
    else:
        import timm

        model = timm.create_model(
            arch,
            pretrained=True,
            num_classes=0,
            pretrained_cfg_overlay={**config["pretrained_cfg"], "file": str(path / WEIGHTS)},
            **config["model_args"],
        )
    return model.eval()


def _card(config: Mapping[str, Any], card: Mapping[str, Any], onnx: tuple[float, int] | None = None) -> str:
    metrics = card.get("metrics", {})
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in metrics.items() if isinstance(v, int | float))
    arch, args = config["architecture"], config["model_args"]
    if arch == "selfsup.backbones.SmallCNN":
        load = (
            '```python\nfrom selfsup.export import load_exported\n\nmodel = load_exported("export")\n```\n\n'
            "Not a timm model: `selfsup.backbones.SmallCNN(**model_args)` takes the weights "
            '(`load_state_dict(safetensors.torch.load_file("export/model.safetensors"))`).'
        )
    else:
        kwargs = "".join(f", {k}={v!r}" for k, v in args.items())
        load = (
            "```python\nimport json, timm\n\n"
            'config = json.load(open("export/config.json"))\n'
            f"model = timm.create_model({arch!r}, pretrained=True, num_classes=0{kwargs},\n"
            '                          pretrained_cfg_overlay=dict(config["pretrained_cfg"], '
            'file="export/model.safetensors"))\n```'
        )
        if config.get("cifar_stem"):
            load += (
                "\n\nTrained with the CIFAR stem (3x3 stride-1 `conv1`, no max-pool), which timm has no "
                "argument for: build it with `selfsup.backbones.TimmBackbone(name, cifar_stem=True)` and "
                "load the weights into its `.model`."
            )
    pc = config["pretrained_cfg"]
    return (
        f"# {card.get('method', '?')} / {card.get('loss', '?')} encoder ({arch})\n\n"
        f"Pretrained without labels by selfsup on `{card.get('data', '?')}` for {card.get('epochs', '?')} epochs "
        f"({card.get('encoder', 'online')} encoder); the features are the pooled backbone output, "
        f"{config['num_features']} wide.\n\n"
        f"Input: {pc['input_size'][0]} channels, {pc['input_size'][1]} px, {config.get('bit_depth', 8)}-bit values "
        f"divided by {2 ** int(config.get('bit_depth', 8)) - 1}, then normalised with mean "
        f"{pc['mean']} and std {pc['std']}.\n\n"
        f"## Load\n\n{load}\n\n"
        + (
            "With onnxruntime (`model.onnx`: input `images`, (batch, C, H, W) float32 normalised as above; "
            "output `features`):\n\n```python\nimport onnxruntime as ort\n\n"
            'session = ort.InferenceSession("export/model.onnx")\n'
            'features = session.run(["features"], {"images": x})[0]\n```\n\n'
            f"Checked with onnxruntime when written: its features differ from PyTorch's by at most {onnx[0]:.2g} "
            f"on {onnx[1]} held-out images.\n\n"
            if onnx is not None
            else ""
        )
        + f"## Held-out metrics at the end of pretraining\n\n| metric | value |\n|---|---|\n{rows}\n"
    )


def not_exportable(encoder: nn.Module) -> str | None:
    """Why ``encoder`` cannot be exported (no ``export_config()``), or None if it can."""
    encoder = getattr(encoder, "_orig_mod", encoder)
    if hasattr(encoder, "export_config"):
        return None
    return f"{type(encoder).__name__} has no export_config() (the backbone contract: selfsup/backbones/__init__.py)"


def export_finished_run(
    cfg: DictConfig, module: Any, out: Path, epochs: int, metrics: Mapping[str, float]
) -> str | None:
    """:func:`export_run` at the end of a run: ``out``'s name, or None, with a warning, for an encoder
    that cannot be exported (a backbone of the user's own), so the finished run is not lost to it."""
    why = not_exportable(module.eval_encoder)
    if why is not None:
        logging.getLogger(__name__).warning('export skipped: %s; results.json records "export": null', why)
        return None
    export_run(cfg, module, out, epochs, metrics)
    return out.name
