"""The search space of a SageMaker tuning job, read from Hydra's sweep override grammar.

The same overrides that ``hydra/sweeper=optuna`` reads become SageMaker parameter ranges:

- ``interval(a,b)``: ContinuousParameter (IntegerParameter on an integer setting);
- ``tag(log, ...)``: logarithmic scaling (untagged ranges are linear, as in Optuna);
- ``range(a,b)`` of integers with step 1: IntegerParameter over Hydra's values a .. b-1;
  any other ``range``: its values as a CategoricalParameter;
- ``choice(...)`` or a comma list: CategoricalParameter.

Only training settings can be tuned: a config-group choice (``optimizer=adamw,sgd``) changes
which settings exist, a launcher setting (``sagemaker.*``, ``instance``) is not sent to the
instance; both are refused with one line. Every candidate value is sent through the rebuild the
instance does (socal.sagemaker.hyperparams), so a value train.py would refuse fails here, before
anything is uploaded. Imports neither torch nor the SageMaker SDK.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep
from omegaconf import DictConfig, OmegaConf

from socal.errors import UserError
from socal.sagemaker import hyperparams
from socal.sagemaker.hyperparams import PLACEMENT_KEYS, TUNED_KEY, hp_key, to_text

# CreateHyperParameterTuningJob limits (ParameterRanges, CategoricalParameterRange.Values).
MAX_RANGES = 30
MAX_CATEGORICAL_VALUES = 30
LOG = "log"


@dataclass(frozen=True)
class ParameterRange:
    key: str  # the hyperparameter key, e.g. optimizer__lr
    kind: str  # Continuous, Integer or Categorical
    min_value: Optional[str] = None
    max_value: Optional[str] = None
    scaling: Optional[str] = None  # Linear or Logarithmic
    values: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return self.key.replace("__", ".")

    def candidates(self) -> tuple[str, ...]:
        """The values to check before launching: the ends of a range, every categorical value."""
        return self.values or (self.min_value, self.max_value)

    def request(self) -> dict[str, Any]:
        """This range as CreateHyperParameterTuningJob takes it."""
        if self.kind == "Categorical":
            return {"Name": self.key, "Values": list(self.values)}
        return {
            "Name": self.key,
            "MinValue": self.min_value,
            "MaxValue": self.max_value,
            "ScalingType": self.scaling,
        }


def split_overrides(arguments: Iterable[str]) -> tuple[list[str], list[Override]]:
    """Plain overrides (compose the base job) and sweep overrides (the search space)."""
    parsed = OverridesParser.create().parse_overrides(list(arguments))
    sweeps = [o for o in parsed if o.is_sweep_override()]
    fixed = {o.key_or_group for o in parsed if not o.is_sweep_override()}
    for override in sweeps:
        if override.key_or_group in fixed:
            raise UserError(
                f"{override.key_or_group} is given a value and a search space: drop one"
            )
    return [o.input_line for o in parsed if not o.is_sweep_override()], sweeps


def _is_int_setting(train: DictConfig, dotted: str) -> bool:
    """An integer setting: its value is an int, or its schema type when the value is null."""
    value = OmegaConf.select(train, dotted)
    if value is not None:
        return isinstance(value, int) and not isinstance(value, bool)
    parent, _, leaf = dotted.rpartition(".")
    node = (OmegaConf.select(train, parent) if parent else train)._get_node(leaf)
    ref_type = node._metadata.ref_type if node is not None else Any
    return ref_type is int or int in typing.get_args(ref_type)


def _number(value: float) -> str:
    return to_text(int(value) if float(value).is_integer() else value)


def _interval(override: Override, key: str, integer: bool) -> ParameterRange:
    sweep = override.value()
    assert isinstance(sweep, IntervalSweep)
    log = LOG in sweep.tags
    if sweep.end <= sweep.start:
        raise UserError(f"{override.input_line}: the interval's end must exceed its start")
    if log and sweep.start <= 0:
        raise UserError(f"{override.input_line}: a log-scaled range must start above 0")
    if integer and not (float(sweep.start).is_integer() and float(sweep.end).is_integer()):
        raise UserError(f"{override.input_line}: {key} is an integer setting: give integer bounds")
    return ParameterRange(
        key=hp_key(key),
        kind="Integer" if integer else "Continuous",
        min_value=_number(sweep.start) if integer else to_text(float(sweep.start)),
        max_value=_number(sweep.end) if integer else to_text(float(sweep.end)),
        scaling="Logarithmic" if log else "Linear",
    )


def _check_values(override: Override, values: list[Any]) -> None:
    if any(isinstance(v, (dict, list)) for v in values):
        raise UserError(f"{override.input_line}: only scalar values can be tuned")
    if len(values) > MAX_CATEGORICAL_VALUES:
        raise UserError(
            f"{override.input_line}: {len(values)} values, SageMaker accepts at most "
            f"{MAX_CATEGORICAL_VALUES} per categorical range"
        )


def to_range(
    override: Override, train: DictConfig, hps: dict[str, str], groups: list[str]
) -> ParameterRange:
    """One sweep override as a SageMaker parameter range; UserError names what is wrong."""
    key = override.get_key_element()
    if override.is_hydra_override() or override.is_add() or override.is_delete():
        raise UserError(f"{override.input_line}: only existing training settings can be tuned")
    if key in groups or override.key_or_group in groups:
        raise UserError(
            f"{override.input_line}: a tuning job cannot choose between config groups (each "
            f"option has its own settings); run one search per {key} option"
        )
    if hp_key(key) not in hps or key in PLACEMENT_KEYS:
        raise UserError(
            f"{override.input_line}: {key} is not a training setting a tuning job can change"
        )
    tags = override.value().tags
    if tags - {LOG}:
        unknown = sorted(tags - {LOG})[0]
        raise UserError(f"{override.input_line}: unknown tag {unknown!r} (log only)")
    integer = _is_int_setting(train, key)
    if override.is_interval_sweep():
        return _interval(override, key, integer)
    values = list(override.sweep_iterator())
    sweep = override.value()
    if (
        isinstance(sweep, RangeSweep)
        and not sweep.shuffle
        and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        and sweep.step == 1
        and values
    ):
        if LOG in tags and values[0] <= 0:
            raise UserError(f"{override.input_line}: a log-scaled range must start above 0")
        return ParameterRange(
            key=hp_key(key),
            kind="Integer",
            min_value=to_text(values[0]),
            max_value=to_text(values[-1]),
            scaling="Logarithmic" if LOG in tags else "Linear",
        )
    if LOG in tags:
        raise UserError(f"{override.input_line}: log scaling applies to interval or range only")
    _check_values(override, values)
    return ParameterRange(key=hp_key(key), kind="Categorical", values=tuple(map(to_text, values)))


def search_space(
    sweeps: list[Override], train: DictConfig, hps: dict[str, str], groups: list[str]
) -> list[ParameterRange]:
    """Every sweep override as a range, with SageMaker's limits checked."""
    if not sweeps:
        raise UserError(
            "hydra/sweeper=sagemaker needs a search space, e.g. "
            "'optimizer.lr=tag(log,interval(1e-5,1e-3))' or trainer.batch_size=4,8"
        )
    ranges = [to_range(o, train, hps, groups) for o in sweeps]
    keys = [r.key for r in ranges]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise UserError(f"{duplicates[0].replace('__', '.')} is swept twice")
    if len(ranges) > MAX_RANGES:
        raise UserError(f"{len(ranges)} tuned settings, a tuning job takes at most {MAX_RANGES}")
    return ranges


def check_candidates(train: DictConfig, hps: dict[str, str], ranges: list[ParameterRange]) -> None:
    """Send each candidate through the instance's rebuild; refuse one train.py would not take."""
    placement = {k: OmegaConf.select(train, k) for k in PLACEMENT_KEYS}
    tuned = ",".join(r.key for r in ranges)
    for parameter in ranges:
        for text in parameter.candidates():
            sent = {**hps, TUNED_KEY: tuned, parameter.key: text}
            given = hyperparams.received([], hyperparams.sm_hps(sent))
            try:
                cfg, _ = hyperparams.rebuild(given, placement)
                hyperparams.verify(given, cfg)
            except UserError as err:
                raise UserError(
                    f"{parameter.dotted}={text} from the search space would not reach "
                    f"train.py: {err}"
                ) from err
