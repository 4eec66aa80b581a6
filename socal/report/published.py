"""The published 20-trial SOCAL test set and its figures (Pangal et al., Sci Rep 2022).

A run trained with ``split=published`` is compared with the published figures only when its
test set holds exactly the 20 published trials: the data check drops trials with no readable
frame or no valid outcome, and 17/20 correct is not comparable with 15/18. Otherwise the
comparison is refused in one line naming the missing (or extra) trials.
"""

from __future__ import annotations

from typing import Any, Optional

from socal.data.splits import PUBLISHED_TEST_PARTICIPANTS
from socal.report.run_results import clustered_interval

SOURCE = "Pangal et al., Sci Rep 2022 (SOCALNet, first 60 s)"
# Both trials (T1 before coaching, T2 after) of each published test surgeon.
PUBLISHED_TRIALS = tuple(f"S{p}T{t}" for p in PUBLISHED_TEST_PARTICIPANTS for t in (1, 2))
FIGURES = {
    "classification": {
        "accuracy": 17 / 20,
        "sensitivity": 1.0,
        "specificity": 0.66,
        "ppv": 0.79,
        "npv": 1.0,
    },
    "regression": {"rmse": 295.0, "r2": 0.74},
}


def is_published(config: dict[str, Any]) -> bool:
    return config.get("split.strategy") == "published"


def published_problem(test_trials: list[str]) -> Optional[str]:
    """Why a test set is not the published one (missing or extra trials), or None."""
    missing = sorted(set(PUBLISHED_TRIALS) - set(test_trials))
    extra = sorted(set(test_trials) - set(PUBLISHED_TRIALS))
    if not missing and not extra:
        return None
    kept = len(set(test_trials) & set(PUBLISHED_TRIALS))
    text = f"{kept} of the {len(PUBLISHED_TRIALS)} published trials"
    if missing:
        text += f", missing {', '.join(missing)} (dropped by the data check: see train.log)"
    if extra:
        text += f", and {len(extra)} others ({', '.join(extra)})"
    return text


def published_comparison(task: str, name: str, test_trials: list[str], result: dict) -> dict:
    """A run's test figures (``result``: its metrics.json) with their few-surgeon intervals
    (the bootstrap for blood loss) beside the published ones, or the one-line refusal."""
    problem = published_problem(test_trials)
    if problem:
        return {
            "run": name,
            "refused": f"{name}: not compared with {SOURCE}: its test set has {problem}",
        }
    intervals = result.get("intervals", {})
    return {
        "run": name,
        "figures": {
            key: {
                "run": result["test"].get(key),
                "ci": clustered_interval(intervals, key) or intervals.get("bootstrap", {}).get(key),
                "published": value,
            }
            for key, value in FIGURES[task].items()
        },
    }
