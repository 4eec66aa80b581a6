"""What the torchvision and timm families share: weights files, new heads, layer groups."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
import torchvision
from safetensors.torch import load_file

from socal.errors import UserError
from socal.models.spec import LayerGroup

log = logging.getLogger(__name__)


def is_local(source: str) -> bool:
    """A path rather than a hub id or a weights name."""
    return source.startswith((".", "/", "~")) or Path(source).expanduser().exists()


def load_weights_file(net: torch.nn.Module, source: str, head: tuple[str, ...]) -> None:
    """Load a ``state_dict`` saved by the family's library (``torch.save`` or safetensors).

    Keys under ``head`` (the classifier the file was trained with) may be absent or of another
    shape: the head is replaced anyway. Anything else missing or mis-shaped is a one-line error.
    """
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"model.source={source} is not a weights file (.pth, .pt, .safetensors)")
    try:
        saved = (
            load_file(path)
            if path.suffix == ".safetensors"
            else torch.load(path, map_location="cpu", weights_only=True)
        )
    except Exception as err:  # a pickle, a zip or a safetensors header error: all "not weights"
        raise UserError(f"model.source={source} is not a readable state dict: {err}") from err
    if isinstance(saved, dict) and isinstance(saved.get("state_dict"), dict):
        saved = saved["state_dict"]
    own = net.state_dict()
    body = [key for key in own if not key.startswith(head)]
    missing = [key for key in body if key not in saved]
    wrong = [key for key in body if key in saved and saved[key].shape != own[key].shape]
    if missing or wrong:
        bad = missing + wrong
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise UserError(
            f"model.source={source} lacks {len(missing)} and mis-shapes {len(wrong)} of the "
            f"model's {len(body)} weights ({shown}): not a checkpoint of this architecture"
        )
    usable = {k: v for k, v in saved.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(usable, strict=False)
    log.info("model: %d weights from %s", len(usable), source)


def set_stochastic_depth(net: torch.nn.Module, rate: Optional[float], what: str) -> None:
    """``model.drop_path`` on a torchvision model: its StochasticDepth layers get torchvision's
    own linear rule, 0 at the first block and ``rate`` at the last (null: as built)."""
    if rate is None:
        return
    layers = [m for m in net.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    if not layers:
        raise UserError(f"model.drop_path={rate}: torchvision's {what} has no stochastic depth")
    for i, layer in enumerate(layers):
        layer.p = rate * i / max(len(layers) - 1, 1)


def one_output(old: torch.nn.Linear, dropout: Optional[float]) -> torch.nn.Module:
    """The replacement of a pretrained classifier: (dropout, then) one linear output."""
    linear = torch.nn.Linear(old.in_features, 1)
    return torch.nn.Sequential(torch.nn.Dropout(dropout), linear) if dropout else linear


def ordered_groups(
    net: torch.nn.Module, head: tuple[str, ...], expand: tuple[str, ...] = ()
) -> list[LayerGroup]:
    """One group per top-level child in registration order (the forward order of torchvision's
    models), the children named in ``expand`` (a stack of blocks) one group per block, and the
    children named in ``head`` together as the last group."""
    groups: list[LayerGroup] = []
    loose = [p for _, p in net.named_parameters(recurse=False)]
    if loose:
        groups.append(LayerGroup("parameters", loose, 0))
    head_params: list[torch.nn.Parameter] = []
    for name, child in net.named_children():
        if name in head:
            head_params += child.parameters()
            continue
        parts = child.named_children() if name in expand else [("", child)]
        for part, module in parts:
            params = list(module.parameters())
            if params:
                label = f"{name}.{part}" if part else name
                groups.append(LayerGroup(label, params, len(groups)))
    return groups + [LayerGroup("head", head_params, len(groups))]


def torchvision_weights(model: str, source: str) -> torchvision.models.WeightsEnum:
    """``DEFAULT``, ``KINETICS400_V1`` or ``R2Plus1D_18_Weights.KINETICS400_V1`` as the enum."""
    try:
        weights = torchvision.models.get_model_weights(model)
    except ValueError as err:
        raise UserError(f"torchvision has no model {model}") from err
    try:
        return weights[source.rsplit(".", 1)[-1]]
    except KeyError:
        names = ", ".join(weights.__members__)
        raise UserError(f"model.source={source}: {model}'s weights are {names}") from None
