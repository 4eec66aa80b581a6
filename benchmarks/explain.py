"""The cost of an explanation: ``python benchmarks/explain.py``.

Explains a few trials of a synthetic folder with the demo's model (a randomly initialised tiny
VideoMAE: attributions of an untrained model cost what a trained one's do) on the CPU, counting
the clips that go through the model forward, and backward, per trial. From those counts, the
cost of the same explanation for VideoMAE-base (16 frames at 224 px) on a GPU is estimated from
its forward cost: 180 GFLOPs per clip (Tong et al. 2022, Table 6), a backward pass twice a
forward, and an assumed sustained GPU throughput (``--tflops``, default 40 for bf16 on an A10G:
about a third of its 125 TFLOPS peak). The measured and the assumed figures are labelled.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from socal.config import ExplainSettings, Precision, compose_train
from socal.data.dataset import ClipDataset
from socal.data.index import index_folder
from socal.data.synthetic import SyntheticSpec, ensure_synthetic
from socal.explain.trials import explain_trial
from socal.models import build_model
from socal.training.engine import Engine
from socal.training.package import Predictor

VIDEOMAE_BASE_GFLOPS = 180.0  # per 16 x 224 x 224 clip, forward


class Counted(torch.nn.Module):
    """The model, counting the clips it sees forward and those a backward pass follows."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.forward_clips, self.backward_clips = model, 0, 0

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.forward_clips += len(clips)
        if torch.is_grad_enabled() and clips.requires_grad:
            self.backward_clips += len(clips)
        return self.model(clips)

    def __getattr__(self, name: str):  # spec, family, net: the wrapped VideoModel's
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--tflops", type=float, default=40.0, help="assumed GPU throughput")
    args = parser.parse_args()
    cfg = compose_train(["experiment=demo"])
    explain = OmegaConf.structured(ExplainSettings)  # the defaults
    with tempfile.TemporaryDirectory() as tmp:
        root = ensure_synthetic(Path(tmp) / "data", SyntheticSpec(trials=8), progress=False)
        trials, _ = index_folder(root)
        torch.manual_seed(0)
        model = Counted(build_model(cfg.model, cfg.data.num_frames))
        engine = Engine(
            model, None, None, cfg.trainer, torch.device("cpu"), Precision.fp32,
            "classification", (0.0, 1.0), Path(tmp), {},
        )  # fmt: skip
        predictor = Predictor(engine, OmegaConf.merge(cfg, {"data": {"root": str(root)}}), 0.5)
        dataset = ClipDataset.of_run(trials, predictor.config, model.spec.image_size, False)
        start = time.perf_counter()
        for index in range(args.trials):
            explain_trial(predictor, dataset, index, explain)
        seconds = (time.perf_counter() - start) / args.trials
    forward = model.forward_clips / args.trials
    backward = model.backward_clips / args.trials
    frames = cfg.data.num_frames
    print(
        f"demo model ({cfg.model.family}, {frames} frames at {model.spec.image_size} px), CPU, "
        f"default explain settings, {args.trials} trials (measured):"
    )
    print(f"  clips forward per trial      {forward:8.0f}")
    print(f"  of which with a backward     {backward:8.0f}")
    print(f"  seconds per trial            {seconds:8.2f}")
    # The counts scale with the clip's seconds (temporal occlusion: seconds + 1 per view).
    scaled = forward + (16 - frames) * len(dataset.views)
    flops = (scaled + 2 * backward) * VIDEOMAE_BASE_GFLOPS * 1e9
    print("VideoMAE-base, 16 frames at 224 px, on a GPU (estimated from the forward cost):")
    print(f"  clip-forward equivalents     {scaled + 2 * backward:8.0f}")
    print(
        f"  seconds per trial            {flops / (args.tflops * 1e12):8.2f}"
        f"   (at an assumed {args.tflops:.0f} TFLOP/s)"
    )


if __name__ == "__main__":
    main()
