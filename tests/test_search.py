"""``hydra/sweeper=optuna``: socal's YAML, the direction from the metric, a real 3-trial search."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from socal.monitor import maximised

from support import CONF, TINY, run_train


@pytest.mark.parametrize(
    ("metric", "direction"),
    [("val_auroc", "maximize"), ("val_balanced_accuracy", "maximize"), ("val_r2", "maximize")]
    + [("val_loss", "minimize"), ("val_rmse", "minimize"), ("val_mae", "minimize")],
)
def test_optuna_direction_follows_the_early_stopping_metric(metric: str, direction: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/sweeper=optuna", f"trainer.early_stopping.metric={metric}"],
            return_hydra_config=True,
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == direction
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.n_jobs == 1 and sweeper.sampler.seed == 0
    assert maximised(metric) is (direction == "maximize")


@pytest.mark.slow
def test_a_three_trial_search_picks_the_best_validation_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCAL_CACHE_DIR", str(tmp_path / "cache"))
    sweep = tmp_path / "sweep"
    run_train(
        sweep,
        [
            "hydra/sweeper=optuna",
            *(o for o in TINY if not o.startswith("optimizer.lr=")),
            "data=synthetic",
            "data.synthetic.trials=24",
            "trainer.epochs=2",
            "trainer.early_stopping.metric=val_loss",
            "optimizer.lr=tag(log,interval(1e-5,1e-2))",
            "trainer.dropout=interval(0.0,0.5)",
            "hydra.sweeper.n_trials=3",
        ],
        multirun=True,
    )
    results = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))

    # Recompute each trial's objective from its own history: the lowest validation loss.
    trials = []
    for run in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        overrides = OmegaConf.load(run / ".hydra" / "overrides.yaml")
        params = {
            key: float(value)
            for key, value in (o.split("=", 1) for o in overrides)
            if key in ("optimizer.lr", "trainer.dropout")
        }
        history = pd.read_csv(run / "history.csv")
        trials.append((history["val_loss"].min(), params))
    assert len(trials) == 3 and len({t[1]["optimizer.lr"] for t in trials}) == 3
    assert all(1e-5 <= p["optimizer.lr"] <= 1e-2 for _, p in trials)
    assert all(0 <= p["trainer.dropout"] <= 0.5 for _, p in trials)
    best_loss, best_params = min(trials, key=lambda t: t[0])
    assert results["best_value"] == pytest.approx(best_loss)
    assert results["best_params"] == pytest.approx(best_params)
