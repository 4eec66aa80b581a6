"""``socal-launch`` / ``python launch.py``: the training config as a SageMaker job (see README).

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

from socal.config import CONFIG_PATH
from socal.errors import exit_on_user_error
from socal.sagemaker import job as sagemaker_job
from socal.sagemaker import launcher, source_archive
from socal.sagemaker.launch_config import LOCAL_INSTANCE, register

register()


@hydra.main(config_path=CONFIG_PATH, config_name="launch", version_base="1.3")
def launch(cfg: DictConfig) -> None:
    with exit_on_user_error():
        where = launcher.context()
        # Everything from the config alone: limits, round trip, names, URIs, image.
        job = sagemaker_job.plan(cfg, where.choices, where.sweep_index, cfg.launch.dry_run)
        # The source archive (size-checked) and the complete request, saved beside it.
        archive = source_archive.build(where.run_dir, job.requirements, cfg.sagemaker.max_source_mb)
        # Each saves the complete request beside the archive, with its checkpoint prefix.
        if cfg.launch.dry_run:
            launcher.dry_run(where, job, archive)
        elif cfg.instance.type == LOCAL_INSTANCE:
            launcher.run_locally(cfg, where, job, archive)
        else:
            launcher.submit(cfg, where, job, archive)


def main() -> None:
    launcher.check_instance_argv(sys.argv)
    launch()
    sys.exit(launcher.exit_status())  # a sweep: how many jobs could not be submitted
