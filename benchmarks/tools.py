"""The cost of the tool features at the real release's size: 31,443 annotated frames.

    python benchmarks/tools.py [--frames 31443] [--trials 143] [--dir .cache/bench-tools]

Writes a ``socal.csv`` for ``--trials`` synthetic trials whose lengths add up to ``--frames``
(the synthetic generator's own rows: empty and ``NA`` rows, doubled suctions, boxes past the
edge), then times, in one run: reading it (``read_tools``), the tracks, APMs and presence vectors
for the 60-second window and for whole trials (``tool_features``), and the tool baseline's
cross-validated fit on the window's APMs, beside the length baseline's fit on the same trials.
No frames are written: the frame order and sizes are given as the index would give them.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socal.config import WindowConfig
from socal.data.index import Trial
from socal.data.synthetic import _file_name, _tool_rows, _Trial
from socal.data.tools import read_tools, tool_features
from socal.training.metrics import baseline_outputs


def plan(frames: int, trials: int, seed: int) -> list[_Trial]:
    """``trials`` trials of 1920x1080 whose lengths sum to ``frames`` (one in six as a/b)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(60, 400, trials).astype(float)
    lengths = np.floor(lengths * frames / lengths.sum()).astype(int)
    lengths[: frames - lengths.sum()] += 1
    return [
        _Trial(f"S{200 + i // 2}T{1 + i % 2}", 200 + i // 2, int(rng.random() < 0.65),
               (1920, 1080), int(n), int(n // 2) if i % 6 == 0 else 0)
        for i, n in enumerate(lengths)
    ]  # fmt: skip


def timed(what: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = what()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=31443)
    parser.add_argument("--trials", type=int, default=143)
    parser.add_argument("--dir", type=Path, default=Path(".cache/bench-tools"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    synthetic = plan(args.frames, args.trials, 0)
    path = args.dir / "socal.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for i, trial in enumerate(synthetic):
            writer.writerows(_tool_rows(trial, np.random.default_rng([0, i, 1]), "jpeg"))
    seconds = pd.DataFrame(
        [(_file_name(t, i, "jpeg"), t.trial_id, i) for t in synthetic for i in range(t.n_frames)],
        columns=["frame", "trial_id", "second"],
    )
    trials = [
        Trial(t.trial_id, str(t.participant_id), float(t.success),
              tuple(Path(f"{t.trial_id}_{i}.jpeg") for i in range(t.n_frames)))
        for t in synthetic
    ]  # fmt: skip
    sizes = {t.trial_id: t.size for t in synthetic}
    read_s, annotations = timed(lambda: read_tools(path, seconds, sizes))
    window_s, window = timed(lambda: tool_features(annotations, trials, WindowConfig()))
    whole = WindowConfig(length_s=None)
    whole_s, _ = timed(lambda: tool_features(annotations, trials, whole))
    train, test = trials[: len(trials) * 4 // 5], trials[len(trials) * 4 // 5 :]
    length_s, _ = timed(lambda: baseline_outputs("classification", train, test))
    both_s, _ = timed(
        lambda: baseline_outputs("classification", train, test, WindowConfig(), window.apms)
    )
    rows = len(pd.read_csv(path, header=None))
    print(
        f"{len(trials)} trials, {args.frames} frames, {rows} socal.csv rows, "
        f"{annotations.report.frames} frames annotated"
    )
    print(f"{'step':<52}{'seconds':>10}")
    for name, value in [
        ("read socal.csv (read_tools)", read_s),
        ("tracks + APMs + presence, 60 s window", window_s),
        ("tracks + APMs + presence, whole trials", whole_s),
        ("total for a run (read + 60 s window)", read_s + window_s),
        ("baselines without tools (majority, lengths)", length_s),
        ("baselines with the tool baseline (CV fit)", both_s),
    ]:
        print(f"{name:<52}{value:>10.2f}")


if __name__ == "__main__":
    main()
