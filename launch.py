"""Run the composed training config as a SageMaker training job (see README).

    python launch.py instance=g5_xlarge optimizer=sgd     # one job
    python launch.py -m optimizer.lr=1e-5,5e-5,1e-4       # one job per value, sweep.csv
    python launch.py launch.dry_run=true                  # print the request, no AWS calls
    python launch.py instance=local experiment=demo       # the container contract, here

Imports neither torch nor transformers; the SageMaker SDK only when a job is really built.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from socal import launcher, local_container, sagemaker_job, sagemaker_submit, source_archive
from socal.errors import UserError, exit_on_user_error
from socal.launch_config import LOCAL_INSTANCE, register

register()


@hydra.main(config_path="conf", config_name="launch", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        where = launcher.context()
        local = cfg.instance.type == LOCAL_INSTANCE
        # 1. Everything from the config alone: limits, round trip, names, URIs, image.
        job = sagemaker_job.plan(cfg, where.choices, where.sweep_index, cfg.launch.dry_run)
        # 2. The source archive (size-checked) and the complete request, saved beside it.
        archive = source_archive.build(where.run_dir, job.requirements, cfg.sagemaker.max_source_mb)
        request = launcher.save_request(job, where, job.predicted_job_name())
        if cfg.launch.dry_run:
            launcher.print_request(request, where)
            launcher.record(where, job, request["TrainingJobName"], "dry-run")
            return
        # 3a. instance=local: train.py under the container contract, in a local folder.
        if local:
            run = local_container.run(
                job.hyperparameters,
                archive,
                launcher.local_data(cfg),
                where.run_dir / "opt_ml",
                request["TrainingJobName"],
            )
            launcher.record(
                where,
                job,
                request["TrainingJobName"],
                "local-failed" if run.returncode else "local-done",
                str(run.model_dir),
            )
            if run.returncode:
                raise UserError(f"the local job failed: {run.failure or 'see the log above'}")
            return
        # 3b. SageMaker: credentials and data first, then upload the code and create the job.
        sagemaker_submit.preflight(job, cfg.launch.check_data)
        blocking = cfg.launch.wait and where.sweep_index is None  # a sweep never blocks
        name = sagemaker_submit.submit(job, archive, wait=blocking, logs=cfg.launch.logs)
        launcher.record(where, job, name, "submitted")


if __name__ == "__main__":
    launcher.check_instance_argv(sys.argv)
    main()
