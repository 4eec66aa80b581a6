"""Work lost when SageMaker stops a job: SIGTERM to process 1 of the container, as Docker does.

    python benchmarks/stop_pid1.py                         # this checkout, socal's exec chain
    python benchmarks/stop_pid1.py --code ../main --chain driver   # what main's jobs ran
    python benchmarks/stop_pid1.py --chain driver --minutes 0.25   # signal lost, 15 s saves
    python benchmarks/stop_pid1.py trainer.batch_size=1            # longer epochs

Builds the container folder with the SDK's own sm_train.sh and drivers (socal.sagemaker.
local_container) for the demo config, runs its entry command as process 1 of a new PID namespace
(``unshare``, needs root), sends SIGTERM to process 1 ``--delay`` seconds after the first epoch,
SIGKILLs it ``--grace`` seconds later if it still runs (SageMaker waits 120 s), and reports the
training time the newest checkpoint lacks: what a restarted job redoes. ``--code`` ships and
encodes another checkout's code (its own train.py, hyperparameters and checkpoint policy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from socal.data.synthetic import SyntheticSpec, generate  # noqa: E402
from socal.sagemaker import local_container, source_archive, submit  # noqa: E402

from support import local_plan, stop_process_1  # noqa: E402

ENCODE = """
import json, sys
from hydra import compose, initialize_config_dir
from socal.config import CONF_DIR
from socal.sagemaker import job
from socal.sagemaker.launch_config import register
register()
with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
    cfg = compose("launch", overrides=sys.argv[1:], return_hydra_config=True)
choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
del cfg.hydra
print(json.dumps(job.plan(cfg, choices).hyperparameters))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to ship")
    parser.add_argument("--chain", choices=("exec", "driver"), default="exec")
    parser.add_argument("--minutes", type=float, help="trainer.checkpoint_every_minutes")
    parser.add_argument("--delay", type=float, default=10.0, help="seconds into epoch 2")
    parser.add_argument("--grace", type=float, default=30.0, help="SIGTERM -> SIGKILL seconds")
    parser.add_argument("overrides", nargs="*", help="more config overrides, e.g. a longer epoch")
    args = parser.parse_args()
    overrides = ["experiment=demo", "trainer.epochs=30", "trainer.progress=false", *args.overrides]
    if args.minutes is not None:
        overrides.append(f"trainer.checkpoint_every_minutes={args.minutes}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = generate(work / "SOCAL", SyntheticSpec(trials=120, seed=0), progress=False)
        encoded = subprocess.run(
            [sys.executable, "-c", ENCODE, "instance=local", f"data.root={data}", *overrides],
            env={**os.environ, "PYTHONPATH": str(args.code.resolve())},
            cwd=args.code, capture_output=True, text=True, check=True,
        )  # fmt: skip
        plan = dataclasses.replace(
            local_plan(overrides), hyperparameters=json.loads(encoded.stdout.splitlines()[-1])
        )
        if args.chain == "driver":
            submit.COMMAND = None  # the SDK's driver Popens train.py: what jobs ran before
        archive = source_archive.build(work, "socal/requirements/instance.txt", 5, root=args.code)
        local = local_container.prepare(plan, archive, data, work / "opt_ml")
        stopped = stop_process_1(
            local.command, local.env, local.root, local.checkpoint_dir, "epoch=1",
            args.delay, args.grace,
        )  # fmt: skip
    exited = (
        "killed"
        if stopped.exited_after_s is None
        else f"exited after {stopped.exited_after_s:.1f} s"
    )
    print(
        f"code={args.code} chain={args.chain} minutes={args.minutes}: SIGTERM "
        f"{args.delay:.0f} s into epoch 2 -> {exited}; newest checkpoint {stopped.newest}; "
        f"training time lost {stopped.lost_s:.1f} s"
    )


if __name__ == "__main__":
    main()
