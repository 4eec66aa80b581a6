"""Coverage of socal's 95% intervals with few surgeons: ``python benchmarks/interval_coverage.py``.

A simulated test set: ``G`` surgeons (10 and 30) with 2 trials each. A surgeon effect enters
both the outcome (skill: more successes) and the model's score (a surgeon-level error the model
makes on both of that surgeon's trials), so a surgeon's two trials are correlated. The model
calls a trial a success when its score passes a fixed cut. True sensitivity, specificity,
accuracy and AUROC come from one million simulated trials. Each repetition scores a fresh test
set with ``published_results`` (the code a run uses) and records whether each interval holds
the true value:

- before (issue 26): the percentile surgeon bootstrap, and Clopper-Pearson on trials;
- after: Clopper-Pearson and Wilson on the design-effect-adjusted n; DeLong and clustered
  DeLong for AUROC.

An interval that could not be computed (a metric undefined) counts as not covering.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import expit
from tqdm import tqdm

from socal.config import EvalConfig
from socal.report.run_results import published_results

CUT = 0.0  # score threshold; the probability handed to socal is expit(score)
PROPORTIONS = ("sensitivity", "specificity", "accuracy")


def simulate(surgeons: int, trials: int, rng: np.random.Generator) -> pd.DataFrame:
    skill = rng.normal(0, 1, surgeons)
    bias = rng.normal(0, 0.9, surgeons)  # the model's error shared by a surgeon's trials
    who = np.repeat(np.arange(surgeons), trials)
    label = (rng.random(len(who)) < expit(0.6 + skill[who])).astype(float)
    score = 1.4 * (label - 0.5) + bias[who] + rng.normal(0, 0.8, len(who))
    return pd.DataFrame(
        {"participant": who.astype(str), "label": label, "probability": expit(score - CUT)}
    )


def truth(rng: np.random.Generator) -> dict[str, float]:
    big = simulate(500_000, 2, rng)
    y, p = big["label"].to_numpy() == 1, big["probability"].to_numpy()
    pred = p >= 0.5
    positives, negatives = rng.choice(p[y], 200_000), rng.choice(p[~y], 200_000)
    return {
        "sensitivity": float(pred[y].mean()),
        "specificity": float((~pred[~y]).mean()),
        "accuracy": float((pred == y).mean()),
        "auroc": float((positives > negatives).mean()),
    }


def intervals(result: dict) -> dict[str, list | None]:
    """Every interval of every metric this benchmark follows, by method name."""
    found = result["intervals"]
    out = {}
    for name in (*PROPORTIONS, "auroc"):
        out[f"{name}: percentile bootstrap (before)"] = found["bootstrap"].get(name)
    for name in PROPORTIONS:
        exact = found["exact"].get(name, {})
        clustered = found["clustered"].get(name, {})
        out[f"{name}: Clopper-Pearson on trials (before)"] = exact.get("clopper_pearson")
        out[f"{name}: Clopper-Pearson, design effect"] = clustered.get("clopper_pearson")
        out[f"{name}: Wilson, design effect"] = clustered.get("wilson")
    auroc = found["auroc"] or {}
    out["auroc: DeLong"] = (auroc.get("delong") or {}).get("ci")
    out["auroc: clustered DeLong"] = (auroc.get("clustered_delong") or {}).get("ci")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--surgeons", type=int, nargs="+", default=[10, 30])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    true = truth(rng)
    print("true values:", ", ".join(f"{k} {v:.3f}" for k, v in true.items()))
    settings = EvalConfig(bootstrap=args.bootstrap, seed=1)
    tables = {}
    for surgeons in args.surgeons:
        start = time.perf_counter()
        hits: dict[str, list[bool]] = {}
        widths: dict[str, list[float]] = {}
        for _ in tqdm(range(args.repetitions), desc=f"{surgeons} surgeons", leave=False):
            result = published_results("classification", simulate(surgeons, 2, rng), 0.5, settings)
            for method, bounds in intervals(result).items():
                metric = method.split(":")[0]
                held = bounds is not None and bounds[0] <= true[metric] <= bounds[1]
                hits.setdefault(method, []).append(held)
                widths.setdefault(method, []).append(
                    np.nan if not bounds else bounds[1] - bounds[0]
                )
        tables[surgeons] = {m: (np.mean(h), np.nanmean(widths[m])) for m, h in hits.items()}
        print(f"{surgeons} surgeons: {time.perf_counter() - start:.0f} s")
    methods = list(tables[args.surgeons[0]])
    header = "".join(f"{f'{g} surgeons: cover  width':>28}" for g in args.surgeons)
    print(f"\n{args.repetitions} repetitions, nominal 95%, 2 trials per surgeon\n")
    print(f"{'interval':<52}{header}")
    for method in methods:
        cells = "".join(
            f"{tables[g][method][0]:>20.3f}{tables[g][method][1]:>8.3f}" for g in args.surgeons
        )
        print(f"{method:<52}{cells}")


if __name__ == "__main__":
    main()
