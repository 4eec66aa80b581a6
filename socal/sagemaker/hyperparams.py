"""The training config as SageMaker hyperparameters, and back: encode, limits, rebuild, verify.

One hyperparameter per training setting (``optimizer__lr``: dots become ``__``, since SageMaker
SDK v3 exports every key as a shell variable and a dot kills the job before it starts), one per
config group choice (``optimizer=sgd``), plus two check values: ``socal_fingerprint`` (the
resolved config's fingerprint) and ``socal_sent`` (a 4-hex digest per key of the value sent, so
the instance can tell which values a tuning job changed); a tuning job adds ``socal_tuned``, the
keys it may change. Imports neither torch nor the SDK.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from socal.config import (
    CONF_DIR,
    compose_train,
    config_differences,
    fingerprint,
    flatten,
    semantic_config,
)
from socal.errors import UserError

FINGERPRINT_KEY = "socal_fingerprint"
SENT_KEY = "socal_sent"
# Tuning jobs only: the comma-separated keys the tuner may change (socal.sagemaker.tuning).
TUNED_KEY = "socal_tuned"
CHECK_KEYS = (FINGERPRINT_KEY, SENT_KEY, TUNED_KEY)
# Where the training data and checkpoints are on a SageMaker instance.
CONTAINER_DATA_ROOT = "/opt/ml/input/data/training"
CONTAINER_CHECKPOINT_DIR = "/opt/ml/checkpoints"
# Paths of the host the job runs on: the container sets them from its environment.
PLACEMENT_KEYS = ("data.root", "trainer.checkpoint_dir")
# CreateTrainingJob limits (enforced by AWS, by neither the SDK nor moto).
MAX_HYPERPARAMETERS = 100
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 2500
SHELL_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A value containing one of these breaks v3's env file or Hydra's override parser.
UNSAFE_TEXT = {
    "'": "a single quote",
    "\\": "a backslash",
    "\n": "a newline",
    "\r": "a carriage return",
    "\0": "a NUL byte",
    "${": "an interpolation",
}
DIGEST_CHARS = 4


def training_groups() -> list[str]:
    """The config groups train.yaml composes (not ``experiment``: its values are in the leaves)."""
    defaults = OmegaConf.load(CONF_DIR / "train.yaml").get("defaults", [])
    return [
        k
        for item in defaults
        if isinstance(item, DictConfig)
        for k, v in item.items()
        if v is not None
    ]


def hp_key(dotted: str) -> str:
    return dotted.replace(".", "__")


# -- what SageMaker does to a value on its way to the script --------------------------------
def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def to_text(value: Any) -> str:
    """The hyperparameter string for one config value (strings raw, the rest JSON)."""
    return _encode(list(value) if isinstance(value, tuple) else value)


def transported(text: str) -> str:
    """A hyperparameter string as the v3 driver passes it on argv.

    CreateTrainingJob stores strings; the container's environment.py JSON-decodes each into
    ``SM_HPS``; the driver decodes once more and re-encodes non-strings as JSON.
    """
    return _encode(_decode(_decode(text)))


def driver_argv(hyperparameters: dict[str, str]) -> list[str]:
    """``--key value`` pairs, as v3's basic_script_driver / torchrun_driver build them."""
    argv = []
    for key, text in hyperparameters.items():
        argv += [f"--{key}", transported(text)]
    return argv


def sm_hps(hyperparameters: dict[str, str]) -> str:
    """The ``SM_HPS`` environment value the container exports (JSON of decoded values)."""
    return json.dumps({k: _decode(v) for k, v in hyperparameters.items()})


def received(argv: list[str], env_hps: str | None) -> dict[str, str]:
    """What the script was given: ``SM_HPS``, else argv ``--key value`` pairs.

    ``SM_HPS`` first: both start paths export it as JSON, while argv differs between them (v3's
    driver JSON-encodes values; the legacy toolkit that tuning jobs run uses ``str()``: ``False``,
    ``''`` for None, Python list repr).
    """
    if env_hps is not None:
        return {k: _encode(_decode(v)) for k, v in json.loads(env_hps).items()}
    if argv:
        if len(argv) % 2 or not all(a.startswith("--") for a in argv[::2]):
            raise UserError(f"expected --key value pairs from SageMaker, got: {' '.join(argv)}")
        return {k[2:]: v for k, v in zip(argv[::2], argv[1::2], strict=True)}
    return {}


# -- launch side ------------------------------------------------------------------------------
def digest(key: str, text: str) -> str:
    return hashlib.sha256(f"{key}={transported(text)}".encode()).hexdigest()[:DIGEST_CHARS]


def encode(train_cfg: DictConfig, choices: dict[str, str]) -> dict[str, str]:
    """Hyperparameters for a resolved training config and its group choices."""
    hps = {group: str(choices[group]) for group in training_groups()}
    container = OmegaConf.to_container(train_cfg, resolve=True, enum_to_str=True)
    for dotted, value in flatten(container).items():
        if isinstance(value, dict) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) for v in value)
        ):
            raise UserError(
                f"{dotted}={value!r} cannot travel as a hyperparameter: "
                "only scalars and lists of scalars can"
            )
        hps[hp_key(dotted)] = to_text(value)
    hps[FINGERPRINT_KEY] = fingerprint(train_cfg)
    hps[SENT_KEY] = "".join(digest(k, hps[k]) for k in sorted(hps) if k != FINGERPRINT_KEY)
    return hps


def check_limits(hps: dict[str, str]) -> None:
    """CreateTrainingJob's limits and what v3's env file cannot carry, naming the key."""
    if len(hps) > MAX_HYPERPARAMETERS:
        raise UserError(
            f"{len(hps)} hyperparameters, SageMaker accepts at most "
            f"{MAX_HYPERPARAMETERS}: reduce the config"
        )
    for key, text in hps.items():
        name = key.replace("__", ".")
        if len(key) > MAX_KEY_CHARS or not SHELL_IDENTIFIER.match(key):
            raise UserError(
                f"{name}: hyperparameter key {key!r} must be a shell identifier "
                f"of at most {MAX_KEY_CHARS} characters"
            )
        if len(text) > MAX_VALUE_CHARS:
            raise UserError(
                f"{name}: value has {len(text)} characters, SageMaker accepts at "
                f"most {MAX_VALUE_CHARS}"
            )
        for bad, what in UNSAFE_TEXT.items():
            if bad in text:
                raise UserError(
                    f"{name}: value contains {what}, which cannot travel to the SageMaker container"
                )


# -- container side ---------------------------------------------------------------------------
def _override_value(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value + "'"
    if isinstance(value, list):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return json.dumps(value)


def hydra_quote(text: str) -> str:
    """A string as a quoted Hydra override value."""
    return _override_value(text)


def to_overrides(hps: dict[str, str], known: Iterable[str]) -> list[str]:
    """Hydra overrides for the received hyperparameters; refuse keys the config does not have."""
    groups = training_groups()
    by_key = {hp_key(d): d for d in known}
    overrides = [f"{g}={hps[g]}" for g in groups if g in hps]
    for key, text in hps.items():
        if key in groups or key in CHECK_KEYS or _is_platform_key(key):
            continue
        if key not in by_key:
            raise UserError(f"hyperparameter {key} is not a key of the training config")
        overrides.append(f"{by_key[key]}={_override_value(_decode(text))}")
    return overrides


def _is_platform_key(key: str) -> bool:
    """Keys SageMaker itself adds (tuning jobs: ``_tuning_objective_metric``, ...)."""
    return key.startswith("_") or key.startswith("sagemaker_")


def _known_keys(cfg: DictConfig) -> set[str]:
    """Leaves of ``cfg`` plus every inner node (a null may replace a whole node)."""
    leaves = flatten(OmegaConf.to_container(cfg, resolve=False))
    return set(leaves) | {k.rsplit(".", i)[0] for k in leaves for i in range(1, k.count(".") + 1)}


def rebuild(hps: dict[str, str], placement: dict[str, str]) -> tuple[DictConfig, list[str]]:
    """The training config the received hyperparameters describe, and its Hydra overrides.

    ``placement`` gives this host's value of the PLACEMENT_KEYS (data and checkpoint paths).
    """
    groups = training_groups()
    missing = [g for g in groups if g not in hps]
    if missing:
        raise UserError(f"hyperparameters lack the group choices {', '.join(missing)}")
    try:
        base = compose_train([f"{g}={hps[g]}" for g in groups])
        hps = {**hps, **{hp_key(k): v for k, v in placement.items()}}
        overrides = to_overrides(hps, _known_keys(base))
        return compose_train(overrides), overrides
    except UserError:
        raise
    except Exception as err:  # Hydra / OmegaConf composition errors
        raise UserError(f"the hyperparameters do not compose: {err}".splitlines()[0]) from err


def _same(text: str, value: Any) -> bool:
    mine = transported(to_text(value))
    return mine == text or _decode(mine) == _decode(text)


def verify(hps: dict[str, str], cfg: DictConfig) -> list[str]:
    """Check the rebuilt config against what was received; return the keys a tuner changed.

    Raises UserError with a one-line reason when a received value was not applied, a setting
    is missing, a value changed that ``socal_tuned`` does not list, or (no value having changed
    since launch) the fingerprint differs.
    """
    for key in (FINGERPRINT_KEY, SENT_KEY):
        if key not in hps:
            raise UserError(f"hyperparameter {key} is missing: not launched by launch.py?")
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    leaves = {hp_key(k): v for k, v in flatten(container).items() if k not in PLACEMENT_KEYS}
    for key, value in leaves.items():
        if key not in hps:
            raise UserError(
                f"hyperparameter {key} is missing: {key.replace('__', '.')} "
                "would silently take its default"
            )
        if not _same(hps[key], value):
            raise UserError(
                f"{key.replace('__', '.')}: received {hps[key]} but the rebuilt "
                f"config has {to_text(value)}"
            )
    unsent = (FINGERPRINT_KEY, TUNED_KEY)
    keys = sorted(k for k in hps if k not in unsent and not _is_platform_key(k))
    sent = hps[SENT_KEY]
    if len(sent) != DIGEST_CHARS * (len(keys) - 1):
        raise UserError(f"{SENT_KEY} does not match the hyperparameter keys received")
    digests = [sent[i : i + DIGEST_CHARS] for i in range(0, len(sent), DIGEST_CHARS)]
    changed = [
        k
        for k, d in zip([k for k in keys if k != SENT_KEY], digests, strict=True)
        if digest(k, hps[k]) != d
    ]
    tuned = set(filter(None, hps.get(TUNED_KEY, "").split(",")))
    untuned = [k for k in changed if k not in tuned]
    if untuned:
        allowed = ", ".join(sorted(tuned)) or "nothing (not launched as a tuning job)"
        raise UserError(
            f"{', '.join(untuned)} changed since launch; the tuning job may change: {allowed}"
        )
    if not changed and fingerprint(cfg) != hps[FINGERPRINT_KEY]:
        raise UserError(
            f"config fingerprint {fingerprint(cfg)} differs from the "
            f"{hps[FINGERPRINT_KEY]} sent by the launcher"
        )
    return changed


def round_trip(train_cfg: DictConfig, hps: dict[str, str]) -> None:
    """Launch side: send ``hps`` through SageMaker's transport and back; refuse on any loss."""
    given = received([], sm_hps(hps))
    placement = {k: OmegaConf.select(train_cfg, k) for k in PLACEMENT_KEYS}
    try:
        rebuilt, _ = rebuild(given, placement)
        # The key that changed, when one did, says more than the fingerprint verify compares.
        diffs = config_differences(semantic_config(train_cfg), semantic_config(rebuilt))
        if diffs:
            raise UserError(diffs[0])
        verify(given, rebuilt)
    except UserError as err:
        raise UserError(f"the config would not survive the trip to SageMaker: {err}") from err
