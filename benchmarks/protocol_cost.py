"""Wall-clock and cost of a whole protocol on SageMaker: separate jobs, packed jobs, warm pools.

    python benchmarks/protocol_cost.py                          # 45 VideoMAE-base runs, g5.xlarge
    python benchmarks/protocol_cost.py --runs 15 --instance g4dn_xlarge --clips-per-s 27
    python benchmarks/protocol_cost.py --measure                # also time 5 local jobs vs 1 packed

The estimate is arithmetic over named inputs; each says where its default comes from:
"documented" (AWS documentation or public figures, see DESIGN.md), "assumed" (a round number to
replace by your own jobs' SecondaryStatusTransitions), or "measured" (``--measure``, on this
machine's local container chain). Billing follows SageMaker's rule that instance provisioning
(the Starting phase) is not billed and everything after it is; a warm pool is billed while it
waits (``sagemaker.keep_alive_minutes``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inputs:
    runs: int
    epochs: int
    clips_per_epoch: int
    clips_per_s: float  # documented: DESIGN.md "GPU facts", VideoMAE-B at 45% MFU
    run_fixed_s: float  # assumed: model load, validation/test passes, plots, per run
    provisioning_s: float  # documented range "a few minutes" (Starting): not billed
    image_and_data_s: float  # assumed: DLC pull (~10 GB) + 2.2 GiB frame cache (Downloading)
    install_s: float  # assumed: pip install of requirements/instance.txt (0 with sagemaker.image)
    upload_s: float  # assumed: model.tar.gz + output.tar.gz (Uploading)
    warm_start_s: float  # documented: a job matched to a warm pool starts in well under a minute
    keep_alive_min: float
    parallel: int  # instances at once (GPU quotas are often 1-2)
    hourly_usd: float

    @property
    def train_s(self) -> float:
        return self.epochs * self.clips_per_epoch / self.clips_per_s + self.run_fixed_s

    @property
    def start_s(self) -> float:
        return self.provisioning_s + self.image_and_data_s + self.install_s + self.upload_s


def estimate(i: Inputs) -> list[tuple[str, float, float, int]]:
    """(scenario, wall-clock s, cost USD, jobs) for separate, warm-pooled and packed jobs."""
    waves = math.ceil(i.runs / i.parallel)
    billed_start = i.start_s - i.provisioning_s
    usd = i.hourly_usd / 3600
    separate_wall = waves * (i.start_s + i.train_s)
    separate_usd = i.runs * (billed_start + i.train_s) * usd
    # Warm pool: each instance's first job starts cold; the others reuse the instance (no
    # provisioning, image, install: the pool keeps them) and download nothing new. The pool is
    # billed between jobs and for its keep-alive after the last one.
    warm_wall = (i.start_s + i.train_s) + (waves - 1) * (i.warm_start_s + i.train_s)
    warm_usd = (
        i.parallel * billed_start + (i.runs - i.parallel) * (i.warm_start_s + i.upload_s)
        + i.runs * i.train_s + i.parallel * i.keep_alive_min * 60
    ) * usd  # fmt: skip
    # Packed: one job per instance, its runs one after another on the single GPU.
    packed_wall = i.start_s + waves * i.train_s
    packed_usd = (i.parallel * billed_start + i.runs * i.train_s) * usd
    return [
        (f"separate jobs ({i.parallel} at a time)", separate_wall, separate_usd, i.runs),
        (f"separate jobs, warm pool {i.keep_alive_min:g} min", warm_wall, warm_usd, i.runs),
        (f"packed: runs_per_job={waves}", packed_wall, packed_usd, i.parallel),
    ]


def demo_data() -> None:
    """The demo's synthetic folder, made before either clock starts (both sweeps read it)."""
    from hydra import compose, initialize_config_dir

    from socal.config import register
    from socal.data.synthetic import data_root

    register()
    here = os.getcwd()
    os.chdir(ROOT)  # where the sweeps run: data.root is relative to it
    try:
        with initialize_config_dir(config_dir=str(ROOT / "socal" / "conf"), version_base="1.3"):
            data_root(compose("train", overrides=["experiment=demo"]).data, progress=False)
    finally:
        os.chdir(here)


def measure(epochs: int, folds: int = 5) -> dict[str, float]:
    """Wall-clock of a k-fold demo sweep as ``folds`` local-container jobs and as one packed job."""
    demo_data()
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("separate", []), ("packed", ["launch.runs_per_job=all"])):
            command = [
                sys.executable, "launch.py", "-m", "instance=local", "experiment=demo",
                "split=kfold", f"split.fold={','.join(map(str, range(folds)))}",
                f"trainer.epochs={epochs}", "trainer.progress=false", *extra,
                f"hydra.sweep.dir={tmp}/{name}",
            ]  # fmt: skip
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
            times[name] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=45, help="5 folds x 3 seeds x 3 configs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--clips-per-epoch", type=int, default=100)
    parser.add_argument("--clips-per-s", type=float, default=29.0, help="A10G, VideoMAE-B, bf16")
    parser.add_argument("--instance", default="g5_xlarge", help="a conf/instance option")
    parser.add_argument("--parallel", type=int, default=2, help="instances at once (quota)")
    parser.add_argument("--run-fixed-s", type=float, default=60.0)
    parser.add_argument("--provisioning-s", type=float, default=120.0)
    parser.add_argument("--image-and-data-s", type=float, default=150.0)
    parser.add_argument("--install-s", type=float, default=60.0)
    parser.add_argument("--upload-s", type=float, default=10.0)
    parser.add_argument("--warm-start-s", type=float, default=30.0)
    parser.add_argument("--keep-alive-min", type=float, default=10.0)
    parser.add_argument("--measure", action="store_true", help="time local jobs vs one packed")
    parser.add_argument("--measure-epochs", type=int, default=1, help="epochs of the demo sweep")
    args = parser.parse_args()
    instances = ROOT / "socal" / "conf" / "instance"
    instance = OmegaConf.load(instances / f"{args.instance}.yaml").instance
    inputs = Inputs(
        args.runs, args.epochs, args.clips_per_epoch, args.clips_per_s, args.run_fixed_s,
        args.provisioning_s, args.image_and_data_s, args.install_s, args.upload_s,
        args.warm_start_s, args.keep_alive_min, args.parallel, float(instance.hourly_usd),
    )  # fmt: skip
    print(
        f"{args.runs} runs x {args.epochs} epochs x {args.clips_per_epoch} clips on "
        f"{instance.type} (${instance.hourly_usd}/h), {args.parallel} instances at a time"
    )
    print(
        f"per run: {inputs.train_s / 60:.1f} min training (documented throughput "
        f"{args.clips_per_s:g} clips/s + assumed {args.run_fixed_s:g} s fixed); per job start: "
        f"{inputs.start_s / 60:.1f} min (the phases named in Inputs)"
    )
    print(f"{'scenario':<36}{'jobs':>6}{'wall-clock':>14}{'cost':>10}")
    for name, wall, usd, jobs in estimate(inputs):
        print(f"{name:<36}{jobs:>6}{wall / 3600:>12.2f} h{usd:>9.2f} $")
    if args.measure:
        times = measure(args.measure_epochs)
        print(f"measured here, 5-fold demo sweep, {args.measure_epochs} epoch(s), instance=local:")
        print(f"{'5 local-container jobs':<36}{times['separate']:>12.1f} s")
        print(f"{'1 packed job (runs_per_job=all)':<36}{times['packed']:>12.1f} s")
        print(json.dumps({k: round(v, 1) for k, v in times.items()}))


if __name__ == "__main__":
    main()
