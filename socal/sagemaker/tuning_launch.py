"""``python launch.py -m hydra/sweeper=sagemaker ...``: compose, plan, then print or submit.

Called by socal's Hydra sweeper plugin (hydra_plugins/socal_sweepers) with the command line's
overrides: the plain ones compose the job every trial runs, the sweep ones are the search space.
Writes ``tuning_request.json`` (the CreateHyperParameterTuningJob request) and the
``sourcedir.tar.gz`` the trials run into the Hydra sweep folder. No torch; the SageMaker SDK only
in ``submit()``, which creates the job with SDK v3's ``HyperparameterTuner`` around the
ModelTrainer a single launch builds (socal.sagemaker.submit.model_trainer).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.core.config_loader import ConfigLoader
from omegaconf import DictConfig, open_dict

from socal.errors import UserError
from socal.s3 import split_s3
from socal.sagemaker import source_archive, tuning
from socal.sagemaker import submit as aws
from socal.sagemaker.launch_config import LOCAL_INSTANCE
from socal.sagemaker.tuning import TuningPlan
from socal.sagemaker.tuning_space import split_overrides

log = logging.getLogger("socal.launch")


def run(config_loader: ConfigLoader, master: DictConfig, arguments: list[str]) -> str:
    """One tuning job for these overrides; returns its name."""
    plain, sweeps = split_overrides(arguments)
    cfg = config_loader.load_sweep_config(master, plain)
    if "tuning" not in cfg:
        raise UserError("hydra/sweeper=sagemaker submits tuning jobs: run it with launch.py")
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
    run_dir = Path(cfg.hydra.sweep.dir)
    with open_dict(cfg):
        del cfg["hydra"]
    if cfg.instance.type == LOCAL_INSTANCE:
        raise UserError(
            "instance=local runs one job: check a trial with `python launch.py instance=local "
            "...` first, then tune on a SageMaker instance type"
        )
    plan = tuning.plan(cfg, choices, sweeps, cfg.launch.dry_run)
    archive = source_archive.build(
        run_dir, plan.job.requirements, cfg.sagemaker.max_source_mb, root_requirements=True
    )
    request = tuning.save_request(plan, run_dir)
    if cfg.launch.dry_run:
        print(json.dumps(request, indent=2))
        log.info(
            "dry run: nothing submitted; request saved to %s, source archive beside it",
            run_dir / tuning.REQUEST_FILE,
        )
        return plan.name
    aws.preflight(plan.job, cfg.launch.check_data)
    name = submit(plan, archive)
    log.info("tuning job submitted: %s (%d trials at most)", name, plan.max_jobs or 0)
    log.info("trial outputs: %s/%s-*/output/", plan.job.output_uri, name)
    log.info("checkpoints:   %s/<trial job name>/", plan.job.checkpoint_uri)
    return name


def submit(tuning: TuningPlan, archive: Path) -> str:
    """Upload the archive, then create the tuning job with HyperparameterTuner; return its name."""
    import boto3
    from sagemaker.core.parameter import (
        CategoricalParameter,
        ContinuousParameter,
        IntegerParameter,
    )
    from sagemaker.core.shapes import (
        HyperbandStrategyConfig,
        HyperParameterTuningJobStrategyConfig,
    )
    from sagemaker.train.tuner import HyperparameterTuner

    bucket, key = split_s3(tuning.code_uri)
    boto3.session.Session(region_name=tuning.job.region).client("s3").upload_file(
        str(archive), bucket, key
    )
    trainer = aws.model_trainer(tuning.job, tuning.code_uri)
    trainer.hyperparameters = tuning.trainer_hyperparameters()
    ranges = {
        r.key: (
            CategoricalParameter(list(r.values))
            if r.kind == "Categorical"
            else (IntegerParameter if r.kind == "Integer" else ContinuousParameter)(
                r.min_value, r.max_value, scaling_type=r.scaling
            )
        )
        for r in tuning.ranges
    }
    strategy_config = None
    if tuning.hyperband_epochs:
        low, high = tuning.hyperband_epochs
        strategy_config = HyperParameterTuningJobStrategyConfig(
            hyperband_strategy_config=HyperbandStrategyConfig(min_resource=low, max_resource=high)
        )
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=tuning.objective,
        objective_type="Maximize" if tuning.maximise else "Minimize",
        hyperparameter_ranges=ranges,
        metric_definitions=tuning.job.metric_definitions,
        strategy=tuning.strategy,
        strategy_config=strategy_config,
        max_jobs=tuning.max_jobs,
        max_parallel_jobs=tuning.max_parallel_jobs,
        early_stopping_type=tuning.early_stopping_type,
        random_seed=tuning.random_seed,
    )
    tuner.tune(job_name=tuning.name, wait=False)
    return tuning.name
