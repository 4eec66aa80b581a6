"""On the instance: train a packed job's runs (``socal_pack.json``), one per GPU at a time.

``exec_driver`` replaces itself by this module when the job's hyperparameters name a pack
(socal.sagemaker.packing). The runs share the job's data channel and installed environment;
each is a ``train.py`` subprocess started as SDK v3's driver starts one (``--key value`` argv and
``SM_HPS`` of that run's hyperparameters), with its own output, model and checkpoint folders
(``run-<index>`` inside the job's) and failure file. On an instance with G GPUs, G runs train at
once, each pinned to one GPU (``CUDA_VISIBLE_DEVICES``) with 1/G of the CPUs for its math
threads; its data-loader workers are the per-GPU ``trainer.num_workers`` of the instance config.

A run whose checkpoint folder says it finished and whose results are here is skipped, so a spot
restart (checkpoints are restored, nothing else) or a relaunch resumes the unfinished runs where
they were and only re-tests the finished ones. SIGTERM (a stop, a spot notice) is passed on to the
running trainings, which save and exit; no further run starts. A failing run does not stop the
others: ``pack_status.json`` in the job's output folder lists every run's outcome, and the job
fails only when every run failed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from socal.sagemaker.container import CHECKPOINT_ENV, OUTPUT_DIR, write_failure
from socal.sagemaker.hyperparams import CONTAINER_CHECKPOINT_DIR, driver_argv, sm_hps
from socal.sagemaker.job import ENTRY_SCRIPT
from socal.sagemaker.packing import PACK_FILE, STATUS_FILE

FINISHED = "finished.json"  # socal.training.checkpoint.FINISHED (training is not imported here)
RESULTS = "metrics.json"


class PackRunner:
    def __init__(self, manifest: dict, env: dict[str, str]) -> None:
        self.runs = manifest["runs"]
        self.gpus = int(manifest.get("gpus") or 0)
        self.slots = max(self.gpus, 1)
        self.env = env
        self.output = Path(env.get("SM_OUTPUT_DATA_DIR", f"{OUTPUT_DIR}/data"))
        self.model = Path(env.get("SM_MODEL_DIR", "/opt/ml/model"))
        self.checkpoints = Path(env.get(CHECKPOINT_ENV, CONTAINER_CHECKPOINT_DIR))
        cpus = int(env.get("SM_NUM_CPUS") or os.cpu_count() or 1)
        self.threads = max(cpus // self.slots, 1)
        self.stopping = threading.Event()
        self.procs: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.outcomes: dict[int, dict] = {}

    def environment(self, run: dict, slot: int) -> dict[str, str]:
        """The run's own SageMaker environment: hyperparameters, folders, GPU and CPU share."""
        folder = run["folder"]
        env = dict(self.env)
        env.update(
            SM_HPS=sm_hps(run["hyperparameters"]),
            SM_OUTPUT_DATA_DIR=str(self.output / folder),
            SM_MODEL_DIR=str(self.model / folder),
            SM_OUTPUT_FAILURE=str(self.output / folder / "failure"),
            OMP_NUM_THREADS=str(self.threads),
            **{CHECKPOINT_ENV: str(self.checkpoints / folder)},
        )
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slot)
        return env

    def finished(self, run: dict) -> bool:
        folder = run["folder"]
        return (self.checkpoints / folder / FINISHED).is_file() and (
            self.output / folder / RESULTS
        ).is_file()

    def train(self, run: dict, slot: int) -> dict:
        index = run["index"]
        outcome = {"index": index, "folder": run["folder"], "gpu": slot if self.gpus else None,
                   "threads": self.threads}  # fmt: skip
        if self.finished(run):
            print(f"pack: run {index} already finished: skipped", flush=True)
            return {**outcome, "status": "done", "skipped": True}
        if self.stopping.is_set():
            return {**outcome, "status": "stopped"}
        env = self.environment(run, slot)
        for key in ("SM_OUTPUT_DATA_DIR", "SM_MODEL_DIR", CHECKPOINT_ENV):
            Path(env[key]).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, ENTRY_SCRIPT, *driver_argv(run["hyperparameters"])]
        print(f"pack: run {index} started (GPU {outcome['gpu']}, {self.threads} threads)",
              flush=True)  # fmt: skip
        started = time.time()
        with self.lock:
            proc = subprocess.Popen(command, env=env)
            self.procs[index] = proc
        returncode = proc.wait()
        with self.lock:
            del self.procs[index]
        outcome.update(started=started, ended=time.time(), returncode=returncode)
        failure = Path(env["SM_OUTPUT_FAILURE"])
        if returncode == 0 and (self.checkpoints / run["folder"] / FINISHED).is_file():
            outcome["status"] = "done"
        elif returncode == 0 or self.stopping.is_set():
            outcome["status"] = "stopped"  # saved a checkpoint on SIGTERM: resumed on restart
        else:
            reason = failure.read_text().strip() if failure.is_file() else ""
            outcome.update(status="failed", reason=reason or f"exit status {returncode}")
        print(f"pack: run {index} {outcome['status']}", flush=True)
        return outcome

    def stop(self, signum: int, _frame: object) -> None:
        """Pass the stop on to the running trainings; start no further run."""
        self.stopping.set()
        with self.lock:
            for proc in self.procs.values():
                proc.send_signal(signum)

    def run_all(self) -> int:
        free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(self.slots):  # one worker thread per GPU: a slot is always free
            free.put(slot)

        def one(run: dict) -> dict:
            slot = free.get()
            try:
                return self.train(run, slot)
            finally:
                free.put(slot)

        with ThreadPoolExecutor(self.slots) as pool:
            results = list(pool.map(one, self.runs))
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / STATUS_FILE).write_text(json.dumps({"runs": results}, indent=1) + "\n")
        failed = [r for r in results if r["status"] == "failed"]
        done = [r for r in results if r["status"] == "done"]
        print(f"pack: {len(done)} of {len(results)} runs done"
              + (f"; failed: {', '.join(str(r['index']) for r in failed)}" if failed else ""),
              flush=True)  # fmt: skip
        if failed and len(failed) == len(results):
            write_failure(
                f"every packed run failed; run {failed[0]['index']}: {failed[0]['reason']}"
            )
            return 1
        return 0


def main() -> None:
    manifest = json.loads(Path(PACK_FILE).read_text())
    runner = PackRunner(manifest, dict(os.environ))
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    sys.exit(runner.run_all())


if __name__ == "__main__":
    main()
