"""Two nodes through torchrun on this machine: each node its own working folder (its own disk).

Node 1 runs in its own mount namespace in which node 0's folder is hidden, as on two SageMaker
instances: whatever it needs (the synthetic data, the best weights) must reach it without
reading node 0's disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from socal.training.checkpoint import BEST, load, step_files
from socal.training.distributed import Dist
from socal.training.interrupt import StopSignal
from socal.training.metrics import task_metrics
from socal.training.run import build_engine, load_trials

from support import REPO, TINY, compose_train, read_metrics

pytestmark = pytest.mark.slow
ARGS = [*TINY, "data=synthetic", "data.synthetic.trials=24", "split.test_ratio=0.35",
        "trainer.epochs=3", "split.seed=1"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node(rank: int, folder: Path, port: int, hide: Path | None) -> subprocess.Popen:
    folder.mkdir(parents=True)
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
        f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}",
        str(REPO / "train.py"), "hydra.run.dir=run", *ARGS,
    ]  # fmt: skip
    if hide is not None:  # another disk: node 0's folder is an empty tmpfs here
        script = 'mount -t tmpfs none "$0" && exec "$@"'
        torchrun = ["unshare", "--mount", "sh", "-c", script, str(hide), *torchrun]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    env.pop("SOCAL_CACHE_DIR", None)  # data.root is relative: inside each node's folder
    return subprocess.Popen(
        torchrun, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip


def single_process_outputs(data_root: Path, weights: Path, tmp: Path) -> tuple[np.ndarray, list]:
    """Test-set probabilities of ``weights`` in one process (no torchrun), by trial order."""
    cfg = compose_train([*ARGS, f"data.root={data_root}", f"trainer.checkpoint_dir={tmp}"])
    tmp.mkdir()
    shutil.copy(weights, tmp / BEST)
    subsets = load_trials(cfg, tmp, Dist())
    engine, loaders = build_engine(cfg, subsets, tmp, Dist(), StopSignal(), torch.device("cpu"))
    engine.load_best()
    test = engine.predict(loaders["test"])
    trials = [subsets["test"][i].trial_id for i in test.indices]
    return test, trials


def test_two_nodes_test_the_best_weights_on_every_rank(tmp_path: Path) -> None:
    port = free_port()
    nodes = [
        node(0, tmp_path / "node0", port, None),
        node(1, tmp_path / "node1", port, tmp_path / "node0"),
    ]
    outputs = []
    try:
        for proc in nodes:
            outputs.append(proc.communicate(timeout=600)[0])
    finally:
        for proc in nodes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for proc, out in zip(nodes, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    run = tmp_path / "node0" / "run"
    data = [p for p in (tmp_path / "node1" / ".cache").iterdir()]
    assert len(data) == 1 and (data[0] / "socal_trial_outcomes.csv").exists()  # made on node 1

    predictions = pd.read_csv(run / "predictions.csv")
    test = predictions[predictions.subset == "test"].set_index("trial")
    root = next((tmp_path / "node0" / ".cache").iterdir())
    best, trials = single_process_outputs(root, run / "checkpoints" / BEST, tmp_path / "best")
    np.testing.assert_allclose(test.loc[trials, "probability"], best.outputs, atol=1e-5)
    metrics = read_metrics(run)["test"]
    expected = task_metrics("classification", best.labels, best.outputs)
    assert set(metrics) == set(expected)
    for key, value in expected.items():
        assert metrics[key] == (
            value if isinstance(value, list) else pytest.approx(value, abs=1e-6, nan_ok=True)
        )

    # The check can fail: the last weights (what node 1 tested before) predict differently.
    last_weights = tmp_path / "last.pt"
    torch.save(load(step_files(run / "checkpoints")[0])["model"], last_weights)
    last, _ = single_process_outputs(root, last_weights, tmp_path / "last")
    assert np.abs(last.outputs - best.outputs).max() > 1e-3
