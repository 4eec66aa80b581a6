"""Structured-config schemas for every Hydra config group.

Each YAML file under ``socal/conf/`` is validated against these dataclasses when Hydra composes it,
so a misspelt key or a value of the wrong type fails at compose time with Hydra's own message
naming the key, not an hour into training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf

from socal.errors import UserError

# The config groups are package data: found the same way in a checkout and in an installed wheel.
CONF_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_PATH = "pkg://socal.conf"  # the Hydra apps' config_path (socal.apps)
# The prepared frame cache's default folder inside data.root (uploaded with the data).
CACHE_DIR_NAME = ".socal-cache"

# Keys that never change what a run computes: excluded from the config fingerprint, so a resumed
# run (or one with more data-loader workers) is still "the same config".
NON_SEMANTIC_KEYS = (
    "trainer.num_workers",
    "trainer.prefetch_factor",
    "data.cache",
    "data.cache_dir",
    "trainer.resume",
    "trainer.checkpoint_dir",
    "trainer.checkpoint_every_minutes",
    "trainer.progress",
    "trainer.device",
    "data.root",
    "tracking",
    # How results are reported: a finished run re-evaluated with other settings resumes
    # (eval.clips and eval.flip change validation, so they are not among them).
    "eval.threshold",
    "eval.bootstrap",
    "eval.confidence",
    "eval.seed",
    "eval.bins",
    "eval.plots",
    "eval.explain",
    # Which kernels compute it, not what: a run resumes with them switched.
    "trainer.compile",
    "model.attention",
)


# The five tool classes the SOCAL authors analyse (socal.data.tools).
TOOL_CLASSES = ("suction", "grasper", "cottonoid", "string", "muscle")


class Target(str, Enum):
    success = "success"
    blood_loss = "blood_loss"


class CacheMode(str, Enum):
    auto = "auto"
    off = "off"


class Normalization(str, Enum):
    imagenet = "imagenet"
    videomae = "videomae"
    # Constants measured once on the frames of the whole public release (test trials included).
    socal_release = "socal_release"
    # torchvision's Kinetics-400 video weights (r2plus1d_18, r3d_18, mvit_v2_s, swin3d_t).
    kinetics = "kinetics"
    # TimeSformer's training code (PySlowFast's DATA.MEAN and DATA.STD).
    timesformer = "timesformer"


class SplitStrategy(str, Enum):
    surgeon = "surgeon"
    random = "random"
    kfold = "kfold"
    published = "published"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "32"
    bf16 = "bf16"
    fp16_mixed = "16-mixed"


class Attention(str, Enum):
    """transformers' ``attn_implementation`` (socal.models.hf_video)."""

    sdpa = "sdpa"
    flash_attention_2 = "flash_attention_2"
    eager = "eager"


class Mode(str, Enum):
    min = "min"
    max = "max"


class ClassWeight(str, Enum):
    balanced = "balanced"


@dataclass
class TimesformerArch:
    """Architecture overrides for a randomly initialised ViT-style video transformer (only set
    keys are applied); TimeSformer has these, VideoMAE adds its tubelet size."""

    hidden_size: Optional[int] = None
    num_hidden_layers: Optional[int] = None
    num_attention_heads: Optional[int] = None
    intermediate_size: Optional[int] = None
    image_size: Optional[int] = None
    patch_size: Optional[int] = None


@dataclass
class VideoMAEArch(TimesformerArch):
    tubelet_size: Optional[int] = None


@dataclass
class ModelConfig:
    """What every family's option has (``model.family`` names the family, socal.models)."""

    family: str = MISSING
    # Where the pretrained weights come from: a hub id or a library weights name, a local
    # ``save_pretrained`` directory, or a weights file as the family's library saves it;
    # null builds a randomly initialised model from the option's ``arch`` (no download).
    source: Optional[str] = None
    gradient_checkpointing: bool = False
    # none; encoder (train the head only: a linear probe); or N: the input group (embeddings,
    # stem) and the next N layer groups (blocks, stages) stay as loaded.
    freeze: str = "none"
    # Stochastic depth: the drop-path rate of the deepest block (null: the option's own), where
    # the family's library has it (TimeSformer, V-JEPA 2, MViT, Swin3D, timm and torchvision
    # encoders with stochastic depth); elsewhere a one-line error.
    drop_path: Optional[float] = None
    # transformers families: sdpa, flash_attention_2 (needs the flash-attn package, a GPU of
    # compute capability >= 8.0 and bf16 or 16-mixed) or eager; null: sdpa where the family
    # has it, else eager. Other families have no setting (a one-line error when set).
    attention: Optional[Attention] = None


@dataclass
class VideoMAEModelConfig(ModelConfig):
    family: str = "videomae"
    arch: VideoMAEArch = field(default_factory=VideoMAEArch)


@dataclass
class TimesformerModelConfig(ModelConfig):
    family: str = "timesformer"
    arch: TimesformerArch = field(default_factory=TimesformerArch)


@dataclass
class VJEPA2Arch:
    """Architecture overrides for a randomly initialised V-JEPA 2 (only set keys apply)."""

    hidden_size: Optional[int] = None
    num_hidden_layers: Optional[int] = None
    num_attention_heads: Optional[int] = None
    crop_size: Optional[int] = None
    patch_size: Optional[int] = None
    tubelet_size: Optional[int] = None
    num_pooler_layers: Optional[int] = None
    # The self-supervised predictor (unused for classification, frozen): small in tiny options.
    pred_hidden_size: Optional[int] = None
    pred_num_hidden_layers: Optional[int] = None
    pred_num_attention_heads: Optional[int] = None


@dataclass
class VJEPA2ModelConfig(ModelConfig):
    family: str = "vjepa2"
    arch: VJEPA2Arch = field(default_factory=VJEPA2Arch)


@dataclass
class TorchvisionVideoArch:
    # r2plus1d_18, r3d_18 (any frame count), mvit_v2_s (16 frames), swin3d_t (even counts)
    name: str = "r2plus1d_18"
    # null: the size the Kinetics weights were trained at (112 for the ResNets, 224 otherwise)
    image_size: Optional[int] = None
    # ResNets randomly initialised only: blocks per stage instead of 18 layers' [2, 2, 2, 2]
    layers: Optional[list[int]] = None


@dataclass
class TorchvisionVideoModelConfig(ModelConfig):
    family: str = "torchvision_video"
    arch: TorchvisionVideoArch = field(default_factory=TorchvisionVideoArch)


class EncoderLibrary(str, Enum):
    torchvision = "torchvision"
    timm = "timm"


class TemporalHead(str, Enum):
    mean = "mean"
    lstm = "lstm"
    transformer = "transformer"


@dataclass
class FrameEncoderArch:
    # A 2-D image model run on every frame: torchvision (resnet50, convnext_tiny, ...) or any
    # timm model name; model.source then names its weights (see the family's docs).
    library: EncoderLibrary = EncoderLibrary.torchvision
    name: str = "resnet50"
    image_size: int = 224
    # How the per-frame features become one output: their mean, an LSTM, or a transformer.
    head: TemporalHead = TemporalHead.mean
    head_size: int = 256
    head_layers: int = 1


@dataclass
class FrameEncoderModelConfig(ModelConfig):
    family: str = "frame_encoder"
    arch: FrameEncoderArch = field(default_factory=FrameEncoderArch)
    # data.tools=null's choice for this option when the data has socal.csv (socalnet: true).
    tools: bool = False


@dataclass
class WindowConfig:
    """Which seconds of each trial a clip is drawn from (frames are one per second)."""

    start_s: int = 0
    # null = the whole trial, which leaks the outcome on SOCAL (videos stop at hemostasis).
    length_s: Optional[int] = 60
    # Training only: shift the sampled positions by a random fraction of the stride.
    jitter: bool = True


@dataclass
class AugmentConfig:
    """One random draw per clip, applied to all of its frames; never on validation or test."""

    enabled: bool = True
    hflip: float = 0.5
    crop_scale_min: float = 0.6
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    # Off by default: hue turns blood red into other colours, and blood is the signal.
    hue: float = 0.0


@dataclass
class SyntheticDataConfig:
    trials: int = 48
    seed: int = 0
    size: str = "small"
    length_leaks: bool = True
    # disc: a blood pool that grows for failures; planted: a green square in a known span of
    # seconds and part of the frame, for failures only (explanations must find it); none.
    signal: str = "disc"
    # Also write the tool annotations (socal.csv), with a planted rule in the first 60 s.
    tools: bool = True


@dataclass
class DataConfig:
    root: str = MISSING
    num_frames: int = 16
    target: Target = Target.success
    normalization: Normalization = Normalization.imagenet
    window: WindowConfig = field(default_factory=WindowConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Set only by ``data=synthetic``: generate this folder at ``root`` on first use.
    synthetic: Optional[SyntheticDataConfig] = None
    # auto: read frames from the prepared cache (python -m socal.prepare) when there is a valid
    # one, refuse a stale one, decode the JPEGs when there is none; off: always decode.
    cache: CacheMode = CacheMode.auto
    # Where the cache lives (null: <root>/.socal-cache), e.g. a second SageMaker channel.
    cache_dir: Optional[str] = None
    # Training clips of each trial per epoch, each with its own jitter and augmentation (their
    # offsets spread over the frame stride): K times the steps of one clip per trial.
    clips_per_trial: int = 1
    # The tool annotations (socal.csv): each clip second's presence vector, one value per
    # tool class, reaches the model (a per-frame model: model.family=frame_encoder). null: the
    # model option's own choice (model.tools) when the folder has socal.csv, else off.
    tools: Optional[bool] = None
    # The classes of the tool tracks, APMs and presence vectors; others are counted only.
    tool_classes: list[str] = field(default_factory=lambda: list(TOOL_CLASSES))


@dataclass
class SplitConfig:
    strategy: SplitStrategy = SplitStrategy.surgeon
    val_ratio: float = 0.15
    test_ratio: float = 0.15
    seed: int = 0
    folds: int = 5
    fold: int = 0


@dataclass
class EarlyStoppingConfig:
    metric: str = "val_loss"
    # null: the metric's own direction (socal.monitor); set, it must agree with it.
    mode: Optional[Mode] = None
    patience: int = 5


@dataclass
class TrainerConfig:
    epochs: int = 30
    batch_size: int = 4
    # Data-loader worker processes; -1: one per available core.
    num_workers: int = -1
    seed: int = 0
    device: Device = Device.auto
    # "32", "bf16" or "16-mixed" (a str: OmegaConf enums take member names, not these values).
    precision: str = "auto"
    grad_accum_steps: int = 1
    grad_clip: Optional[float] = 1.0
    # Overrides the model's hidden and attention dropout when set.
    dropout: Optional[float] = None
    # Weight of the success class in the loss (classification; null = 1), or class_weight=
    # balanced: failures / successes in the training split. Off by default.
    pos_weight: Optional[float] = None
    class_weight: Optional[ClassWeight] = None
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    # Decay of an exponential moving average of the weights, updated every optimizer step
    # (e.g. 0.999; null: off). When on, validation, best.pt, testing and the package use it.
    ema: Optional[float] = None
    checkpoint_dir: str = "checkpoints"
    # Also save a checkpoint every N optimizer steps inside an epoch (null: at epoch ends only).
    checkpoint_every_steps: Optional[int] = None
    # And every N minutes of training (0: never; null: 10 inside a SageMaker job, else never).
    checkpoint_every_minutes: Optional[float] = None
    resume: bool = True
    progress: bool = True
    # Batches each data-loader worker keeps ready.
    prefetch_factor: int = 4
    # torch.compile the model for training (the first steps then take longer); checkpoints,
    # best.pt and the package hold the plain model's weights either way.
    compile: bool = False


@dataclass
class EvalConfig:
    """How a run's test results are reported (see socal.report; never changes training)."""

    # val_youden: the threshold maximising Youden's J on validation; or a fixed probability.
    threshold: str = "val_youden"
    # Bootstrap resamples of the test surgeons for the confidence intervals (0: none).
    bootstrap: int = 2000
    confidence: float = 0.95
    seed: int = 0
    # Equal-width probability bins of the reliability diagram and the ECE.
    bins: int = 10
    plots: bool = True
    # Clips per trial at validation, test and prediction time, at evenly spaced offsets inside
    # the frame stride, and their horizontal flips too with flip=true: the trial's prediction is
    # the mean of theirs. They change validation, so model selection: in the fingerprint.
    clips: int = 1
    flip: bool = False
    # Explain the test trials at the end of the run (socal.explain, default settings) into
    # <run>/explanations/, which a SageMaker job's output.tar.gz then holds.
    explain: bool = False


@dataclass
class OptimizerConfig:
    """What socal does with the model's layer groups before the torch optimizer sees them
    (socal.training.optim); the other keys are the optimizer's own arguments."""

    _target_: str = MISSING
    lr: float = MISSING
    weight_decay: float = 0.0
    # Layer-wise learning-rate decay: group at depth d of D gets lr * layer_decay ** (D - d)
    # (transformer blocks, CNN stages); 1.0 is one learning rate for the whole encoder.
    layer_decay: float = 1.0
    # The new head's learning rate is lr * head_lr_scale.
    head_lr_scale: float = 1.0
    # false: no weight decay on biases, norm weights, position embeddings and tokens.
    decay_biases_and_norms: bool = False


@dataclass
class AdamWConfig(OptimizerConfig):
    _target_: str = "torch.optim.AdamW"
    lr: float = 5e-5
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = True


@dataclass
class PlateauConfig:
    """ReduceLROnPlateau on the early-stopping metric, stepped once per epoch."""

    name: str = "plateau"
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 1e-7


@dataclass
class CosineConfig:
    """Linear warmup then cosine decay, stepped once per optimizer step."""

    name: str = "cosine"
    warmup_epochs: float = 1.0


@dataclass
class NoSchedulerConfig:
    name: str = "none"


@dataclass
class TrackingConfig:
    """Experiment tracking (``tracking=none|mlflow``); never changes what a run computes."""

    backend: str = "none"
    # null: MLflow's own default ($MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here); an
    # http(s):// tracking server; or a SageMaker managed MLflow tracking-server ARN.
    uri: Optional[str] = None
    experiment: str = "socal"
    # null: the run folder's name
    run_name: Optional[str] = None
    # Log the model package (model/) as an MLflow pyfunc model: python predict.py
    # run=runs:/<id>/model, mlflow models serve -m runs:/<id>/model
    log_model: bool = True
    # A Model Registry name: each run's model becomes a new version of it (null: not registered)
    register: Optional[str] = None


@dataclass
class TrainConfig:
    # Its shape differs per family; each option carries its family's schema (MODEL_SCHEMAS).
    model: Any = MISSING
    data: DataConfig = MISSING
    split: SplitConfig = MISSING
    trainer: TrainerConfig = MISSING
    eval: EvalConfig = MISSING
    # Their shape differs per option; each option carries its own schema (see register()).
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    tracking: TrackingConfig = MISSING


@dataclass
class PredictData:
    root: str = MISSING
    # auto: use a frame cache prepared in root (python -m socal.prepare) if it fits the model.
    cache: CacheMode = CacheMode.off


@dataclass
class LoaderConfig:
    # Data-loader worker processes; -1: one per available core.
    num_workers: int = 0
    prefetch_factor: int = 4


@dataclass
class PredictConfig:
    """``predict.py``: a trained model (everything else comes from its package) and new trials."""

    # A run folder, a model.tar.gz (local or s3://), or an MLflow URI (runs:/ID/model).
    run: str = MISSING
    data: PredictData = field(default_factory=PredictData)
    # null: the run's trainer.batch_size
    batch_size: Optional[int] = None
    device: Device = Device.auto
    loader: LoaderConfig = field(default_factory=LoaderConfig)


class OcclusionBaseline(str, Enum):
    neutral = "neutral"  # the normalisation's mean colour (0 after normalising)
    neighbour = "neighbour"  # the clip frame before the second (the first second: the next)


@dataclass
class ExplainSettings:
    """What ``socal.explain`` computes for each trial (README, "Explanations")."""

    baseline: OcclusionBaseline = OcclusionBaseline.neutral
    # Seconds with the largest attribution that also get spatial maps.
    top_seconds: int = 3
    # Occlusion patches per side of the frame, for the spatial occlusion map.
    patches: int = 4
    # Also a gradient map of the top seconds: Grad-CAM where the family has a convolutional
    # last stage, integrated gradients (``ig_steps`` steps) elsewhere.
    gradient: bool = True
    ig_steps: int = 16
    # Perturbed clips per forward pass.
    batch: int = 16
    # The trials to explain (null: every trial with frames), by trial id.
    trials: Optional[list[str]] = None


@dataclass
class ExplainConfig:
    """``explain.py``: a trained model, the trials to explain and how."""

    run: str = MISSING
    data: PredictData = field(default_factory=PredictData)
    device: Device = Device.auto
    explain: ExplainSettings = field(default_factory=ExplainSettings)


# model.family -> its schema (conf/model/*.yaml name it in their defaults list).
MODEL_SCHEMAS: dict[str, type] = {
    "videomae": VideoMAEModelConfig,
    "torchvision_video": TorchvisionVideoModelConfig,
    "frame_encoder": FrameEncoderModelConfig,
    "timesformer": TimesformerModelConfig,
    "vjepa2": VJEPA2ModelConfig,
}
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "model": MODEL_SCHEMAS,
    "optimizer": {"adamw": AdamWConfig, "sgd": SGDConfig},
    "scheduler": {"plateau": PlateauConfig, "cosine": CosineConfig, "none": NoSchedulerConfig},
}


def register() -> None:
    """Put the schemas in Hydra's ConfigStore; YAML files name them in their defaults list."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="explain_schema", node=ExplainConfig)
    # Under schema/<group>/ so that they are not listed among the group's own options.
    for group, options in GROUP_SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=f"schema/{group}", name=option, node=schema)


def compose_train(overrides: list[str]) -> DictConfig:
    """Compose conf/train.yaml with ``overrides`` (inside a running Hydra app or standalone)."""
    register()
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="train", overrides=overrides)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def check_set(cfg: DictConfig, example: str) -> None:
    """A one-line UserError naming every required key left unset (``???``), with an example."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{', '.join(missing)} must be set, e.g. {example}")


def semantic_config(cfg: DictConfig) -> dict:
    """The resolved config without the keys that do not change results (NON_SEMANTIC_KEYS)."""
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for dotted in NON_SEMANTIC_KEYS:
        node = resolved
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)
    return resolved


def fingerprint(cfg: DictConfig) -> str:
    """A short hash of what a run computes: equal configs give equal fingerprints.

    It starts with a letter: a hex string such as ``2068559982e89758`` is a JSON number, which
    SageMaker's transport turns into ``Infinity`` on its way to the instance.
    """
    text = json.dumps(semantic_config(cfg), sort_keys=True)
    return "c" + hashlib.sha256(text.encode()).hexdigest()[:15]


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two plain config dicts."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a} -> {b}")
    return diffs


def flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value of a plain config dict (an empty dict is a leaf; lists stay)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
