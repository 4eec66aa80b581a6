"""What the transformers video families share: hub or local weights, a new head, groups.

A family here names its transformers classes and the modules that are new when its encoder is
loaded from a checkpoint (the head); loading refuses a checkpoint that lacks anything else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Optional

import torch
from omegaconf import DictConfig
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import is_flash_attn_2_available

from socal.config import Attention
from socal.errors import UserError
from socal.models.spec import Family, LayerGroup
from socal.models.weights import is_local

log = logging.getLogger(__name__)


class HFVideoFamily(Family):
    """A transformers ``...ForVideoClassification`` with one output."""

    config_class: ClassVar[type[PretrainedConfig]]
    model_class: ClassVar[type[PreTrainedModel]]
    head: ClassVar[tuple[str, ...]]  # state-dict prefixes new in a model loaded from an encoder
    dropout_keys: ClassVar[tuple[str, ...]] = (
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
    )
    drop_path_key: ClassVar[Optional[str]] = "drop_path_rate"  # None: no stochastic depth

    def overrides(self, cfg: DictConfig, num_frames: int) -> dict:
        """Config values every option of the family gets (beyond one label and dropout)."""
        return {}

    def drop_path_overrides(self, rate: float) -> dict:
        """Config values for ``model.drop_path``; a one-line error where the family has none."""
        if self.drop_path_key is None:
            raise UserError(
                f"model.drop_path={rate}: transformers' {self.name} has no stochastic depth"
            )
        return {self.drop_path_key: rate}

    @property
    def attentions(self) -> list[Attention]:
        """The attention implementations the family's transformers model has."""
        has = {
            Attention.sdpa: self.model_class._supports_sdpa,
            Attention.flash_attention_2: self.model_class._supports_flash_attn,
            Attention.eager: True,
        }
        return [choice for choice, supported in has.items() if supported]

    def attention(self, cfg: DictConfig) -> Optional[Attention]:
        """``model.attention``, checked: null is sdpa where the family has it, else eager."""
        setting = cfg.get("attention")
        if setting is None:
            return Attention.sdpa if Attention.sdpa in self.attentions else Attention.eager
        choice = Attention(setting)
        if choice not in self.attentions:
            raise UserError(
                f"model.attention={choice.value}: transformers' {self.name} has "
                + ", ".join(a.value for a in self.attentions)
            )
        if choice is Attention.flash_attention_2 and not is_flash_attn_2_available():
            raise UserError(
                "model.attention=flash_attention_2 needs the flash-attn package (>= 2.3.3) and "
                "a CUDA GPU: pip install flash-attn, or model.attention=sdpa"
            )
        return choice

    def hub_config(self, cfg: DictConfig) -> Any:
        """The option's transformers config, without building it (the hub's or the default)."""
        if cfg.source is None:
            return self.config_class(**_set(cfg.arch))
        try:
            return self.config_class.from_pretrained(cfg.source)
        except OSError:
            log.warning("cannot read %s's config: assuming the family's default", cfg.source)
            return self.config_class()

    def build(self, cfg: DictConfig, num_frames: int, dropout: Optional[float]) -> torch.nn.Module:
        overrides = {"num_labels": 1, **self.overrides(cfg, num_frames)}
        overrides["attn_implementation"] = self._attention_value(cfg)
        if dropout is not None:
            overrides |= dict.fromkeys(self.dropout_keys, dropout)
        if cfg.drop_path is not None:
            overrides |= self.drop_path_overrides(cfg.drop_path)
        if cfg.source is None:
            arch = _set(cfg.arch)
            model = self.model_class(self.config_class(**{**arch, **overrides}))
            log.info("model: randomly initialised %s %s", self.name, arch)
        else:
            model = self.from_pretrained(cfg.source, overrides)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        return model

    def from_pretrained(self, source: str, overrides: dict) -> PreTrainedModel:
        is_path = is_local(source)
        if is_path and not Path(source).expanduser().is_dir():
            raise UserError(f"model.source={source} is not a directory saved with save_pretrained")
        try:
            loaded: Any = self.model_class.from_pretrained(
                str(Path(source).expanduser()) if is_path else source,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                **overrides,
            )
        except OSError as err:
            raise UserError(
                f"cannot load model '{source}': {str(err).splitlines()[0]} -- check the name, "
                "your network or HF cache, or set model.source to a directory saved with "
                "save_pretrained"
            ) from err
        model, info = loaded
        new = sorted({*info["missing_keys"], *(key for key, *_ in info["mismatched_keys"])})
        not_head = [key for key in new if not key.startswith(self.head)]
        if not_head:
            shown = ", ".join(not_head[:3]) + (", ..." if len(not_head) > 3 else "")
            raise UserError(
                f"model.source={source} lacks {len(not_head)} encoder weights ({shown}): "
                f"not a {self.name} checkpoint of this shape"
            )
        log.info("model: %s; new (randomly initialised): %s", source, ", ".join(new) or "nothing")
        return model

    def forward(self, net: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        return net(pixel_values=clips).logits.squeeze(-1)

    def architecture(self, net: Any) -> dict:
        return net.config.to_dict()

    def rebuild(self, cfg: DictConfig, architecture: dict, num_frames: int) -> torch.nn.Module:
        """The packaged shape at the run's attention, but never flash attention where this
        machine cannot run it (a model trained on a GPU, predicted on a laptop): sdpa then."""
        setting = cfg.get("attention")
        flash = setting is not None and Attention(setting) is Attention.flash_attention_2
        if flash and not is_flash_attn_2_available():
            log.info("model.attention=flash_attention_2 is not available here: using sdpa")
            choice = Attention.sdpa.value
        else:
            choice = self._attention_value(cfg)
        config = self.config_class.from_dict(architecture, attn_implementation=choice)
        return self.model_class(config)

    def _attention_value(self, cfg: DictConfig) -> str:
        choice = self.attention(cfg)
        assert choice is not None  # every transformers family has one
        return choice.value


def encoder_groups(
    embeddings: torch.nn.Module, layers: list[torch.nn.Module], head: list[torch.nn.Module]
) -> list[LayerGroup]:
    """Embeddings at depth 0, each transformer layer one deeper, the head modules last."""
    groups = [LayerGroup("embeddings", list(embeddings.parameters()), 0)]
    groups += [
        LayerGroup(f"layer.{i}", list(layer.parameters()), i + 1) for i, layer in enumerate(layers)
    ]
    params = [p for module in head if module is not None for p in module.parameters()]
    return groups + [LayerGroup("head", params, len(layers) + 1)]


def _set(arch: DictConfig) -> dict:
    """The architecture keys an option sets (null: the transformers default)."""
    return {key: value for key, value in arch.items() if value is not None}
