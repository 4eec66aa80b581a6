"""Fine-tuning recipes: per-layer learning rates, no decay on norms and biases, frozen layers."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import load_file
from timm.layers import DropPath
from torch.utils.data import DataLoader
from torchvision.ops import StochasticDepth

from socal.config import AugmentConfig, DataConfig, Normalization, Precision, fingerprint
from socal.data.clips import clip_positions
from socal.data.dataset import ClipDataset
from socal.data.decode import decode_clip
from socal.data.index import Trial
from socal.data.transforms import MEAN_STD
from socal.errors import UserError
from socal.models import build_model
from socal.training import checkpoint
from socal.training.engine import Engine
from socal.training.optim import build_optimizer
from socal.training.runtime import seed_everything

from support import (
    TINY,
    assert_reproduces,
    compose_train,
    encoded,
    expected_rows,
    predict,
    read_metrics,
    run_train,
    same_results,
    start,
    synthetic_folder,
    wait_for_line,
)


def build(*overrides: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    cfg = compose_train(["model=videomae_tiny", *overrides])
    model = build_model(cfg.model, 4)
    return model, build_optimizer(cfg.optimizer, model)


def test_each_parameter_gets_the_layer_decayed_rate_and_decay_of_its_group() -> None:
    lr, decay, head_scale = 1e-3, 0.05, 10.0
    model, optimizer = build(
        f"optimizer.lr={lr}", f"optimizer.weight_decay={decay}", "optimizer.layer_decay=0.75",
        f"optimizer.head_lr_scale={head_scale}",
    )  # fmt: skip
    settings = {
        id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]
    }
    names = dict(model.named_parameters())
    assert set(settings) == {id(p) for p in model.parameters()}  # every parameter, once
    depth_of = {"embeddings": 0, "layer.0": 1, "layer.1": 2}  # two blocks, then the head at 3
    for name, param in names.items():
        block = next((k for k in ("layer.0", "layer.1") if f"encoder.layer.{k[-1]}." in name), None)
        part = block or ("embeddings" if ".embeddings." in name else "head")
        expected_lr = lr * head_scale if part == "head" else lr * 0.75 ** (3 - depth_of[part])
        expected_decay = 0.0 if param.ndim <= 1 else decay
        assert settings[id(param)] == pytest.approx((expected_lr, expected_decay)), name


def test_decay_everywhere_and_one_rate_when_asked() -> None:
    model, optimizer = build("optimizer.decay_biases_and_norms=true", "optimizer.lr=1e-4")
    assert {(g["lr"], g["weight_decay"]) for g in optimizer.param_groups} == {(1e-4, 0.05)}


def test_a_bad_freeze_setting_is_one_line() -> None:
    with pytest.raises(UserError, match=r"model.freeze=7: none, encoder, or a number .* below 3"):
        build("model.freeze=7")


@pytest.mark.slow
def test_a_linear_probe_trains_the_head_only(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path, trials=16, seed=7)
    overrides = [*TINY, f"data.root={data}", "trainer.epochs=2", "model.freeze=encoder"]
    run_train(tmp_path / "run", overrides)
    cfg = compose_train(overrides)
    seed_everything(cfg.trainer.seed)  # as train.py does before it builds the model
    initial = build_model(cfg.model, cfg.data.num_frames, cfg.trainer.dropout).net.state_dict()
    trained = load_file(tmp_path / "run" / "model" / "model.safetensors")
    head = ("fc_norm.", "classifier.")
    assert set(trained) == set(initial)
    assert all(torch.equal(trained[k], v) for k, v in initial.items() if not k.startswith(head))
    assert not all(torch.equal(trained[k], initial[k]) for k in trained if k.startswith(head))
    optimizer = build_optimizer(cfg.optimizer, build_model(cfg.model, 4))
    held = {group["name"] for group in optimizer.param_groups}
    assert held <= {"head", "head/no_decay"}


def test_the_recipe_settings_reach_a_sagemaker_job() -> None:
    hps, sent = encoded(
        ["optimizer.layer_decay=0.75", "optimizer.head_lr_scale=10", "model.freeze=4"]
    )
    assert (hps["optimizer__layer_decay"], hps["model__freeze"]) == ("0.75", "4")
    assert sent["optimizer"]["head_lr_scale"] == 10.0 and len(hps) <= 100


# -- several clips per trial -----------------------------------------------------------------
def grey_trial(folder: Path, trial_id: str, n_frames: int = 60) -> Trial:
    """A trial whose frame i is a flat grey of level 4 i: a clip's pixels name its positions."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(n_frames):
        path = folder / f"{trial_id}_frame_{i + 1:08d}.jpeg"
        Image.fromarray(np.full((48, 64, 3), 4 * i, np.uint8)).save(path, quality=100)
        frames.append(path)
    return Trial(trial_id, trial_id[1], float(trial_id[-1] == "1"), tuple(frames))


def plain_data(**data: object) -> DataConfig:
    return OmegaConf.structured(
        DataConfig(root="x", num_frames=4, augment=AugmentConfig(enabled=False), **data)
    )


def positions_seen(sample: dict) -> list[int]:
    return [round(float(frame.float().mean()) / 4) for frame in sample["pixel_values"]]


def test_k_training_clips_of_a_trial_take_distinct_positions_across_the_stride(
    tmp_path: Path,
) -> None:
    trial = grey_trial(tmp_path / "t", "S1T1")
    dataset = ClipDataset([trial], plain_data(), 32, train=True, seed=0, clips=3)
    assert len(dataset) == 3
    seen = [positions_seen(dataset[view]) for view in range(3)]
    for k, positions in enumerate(seen):  # 4 frames over 60 s: a stride of 15, thirds of 5
        assert all(15 * j + 5 * k <= p < 15 * j + 5 * (k + 1) for j, p in enumerate(positions))
    assert seen == [positions_seen(dataset[view]) for view in range(3)]  # (seed, epoch, k)
    dataset.set_epoch(1)
    assert seen != [positions_seen(dataset[view]) for view in range(3)]


def tiny_engine(tmp_path: Path, *overrides: str) -> Engine:
    cfg = compose_train([*TINY, "trainer.grad_clip=null", *overrides])
    seed_everything(0)
    model = build_model(cfg.model, cfg.data.num_frames)
    return Engine(
        model, build_optimizer(cfg.optimizer, model), None, cfg.trainer, torch.device("cpu"),
        Precision.fp32, "classification", (0.0, 1.0), tmp_path / "ckpt", {},
    )  # fmt: skip


def test_eval_clips_and_flips_give_the_mean_of_each_views_prediction(tmp_path: Path) -> None:
    trials = [grey_trial(tmp_path / name, name) for name in ("S1T1", "S2T0", "S3T1")]
    engine = tiny_engine(tmp_path)
    dataset = ClipDataset(trials, plain_data(), 32, train=False, seed=0, clips=3, flip=True)
    result = engine.predict(DataLoader(dataset, batch_size=4))
    mean, std = (torch.tensor(v)[None, :, None, None] for v in MEAN_STD[Normalization.imagenet])
    expected = []
    with torch.no_grad():
        for trial in trials:
            views = []
            for k in range(3):
                positions = clip_positions(trial.n_frames, 4, 0, 60, (k + 0.5) / 3)
                clip = decode_clip(trial.frames, positions, 32)
                top, left = (clip.shape[-2] - 32) // 2, (clip.shape[-1] - 32) // 2
                x = (clip[..., top : top + 32, left : left + 32].float() / 255 - mean) / std
                views += [x, x.flip(-1)]
            expected.append(torch.sigmoid(engine.module(torch.stack(views))).mean().item())
    assert list(result.indices) == [0, 1, 2]
    assert result.outputs == pytest.approx(expected, abs=1e-5)
    single = engine.predict(DataLoader(ClipDataset(trials, plain_data(), 32, False, 0), 4))
    assert not np.allclose(single.outputs, result.outputs, atol=1e-5)  # the views mattered


# -- EMA ---------------------------------------------------------------------------------------
def clip_batch(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.randn(4, 4, 3, 32, 32, generator=generator),
        "label": torch.tensor([0.0, 1.0, 1.0, 0.0]),
        "index": torch.arange(4),
        "sample": torch.arange(4),
    }


def test_ema_weights_follow_the_recurrence_and_are_what_is_evaluated(tmp_path: Path) -> None:
    decay = 0.8
    engine = tiny_engine(tmp_path, f"trainer.ema={decay}")
    assert engine.ema is not None
    expected: dict[str, torch.Tensor] = {}
    for step in range(4):
        engine.train_epoch([clip_batch(step)])  # one optimizer step each
        weights = {k: v.detach().clone() for k, v in engine.module.state_dict().items()}
        expected = weights if step == 0 else {
            k: decay * expected[k] + (1 - decay) * v if v.is_floating_point() else v
            for k, v in weights.items()
        }  # fmt: skip
    averaged = engine.evaluated.state_dict()
    for name, value in expected.items():
        assert torch.allclose(averaged[name], value, atol=1e-6), name
    assert not all(torch.equal(averaged[k], v) for k, v in engine.module.state_dict().items())
    batch = clip_batch(99)
    result = engine.predict([batch])
    with torch.no_grad():
        by_average = torch.sigmoid(engine.evaluated(batch["pixel_values"])).numpy()
        by_training = torch.sigmoid(engine.module(batch["pixel_values"])).numpy()
    assert result.outputs == pytest.approx(by_average, abs=1e-6)
    assert not np.allclose(result.outputs, by_training, atol=1e-6)
    engine._end_epoch(0.5, result)  # the first epoch improves: best.pt is written
    best = checkpoint.load(tmp_path / "ckpt" / checkpoint.BEST)
    assert all(torch.equal(best[k], v) for k, v in averaged.items())


def test_a_bad_ema_decay_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"trainer.ema=1.5: a decay in \(0, 1\)"):
        tiny_engine(tmp_path, "trainer.ema=1.5")


RECIPE = [
    "trainer.ema=0.9", "data.clips_per_trial=2", "eval.clips=2", "eval.flip=true",
    "trainer.epochs=3", "trainer.checkpoint_every_steps=1",
]  # fmt: skip


@pytest.mark.slow
def test_a_sigkilled_run_with_ema_and_views_resumes_exactly_and_predicts_the_same(
    tmp_path: Path,
) -> None:
    data = synthetic_folder(tmp_path, trials=16, seed=7)
    overrides = [*TINY, f"data.root={data}", *RECIPE]
    reference = tmp_path / "reference"
    run_train(reference, overrides)
    n_train = (pd.read_csv(reference / "split.csv")["subset"] == "train").sum()
    final = checkpoint.load(checkpoint.step_files(reference / "checkpoints")[0])  # newest
    epochs = read_metrics(reference)["epochs_trained"]
    assert final["step"] == epochs * -(-2 * n_train // 4)  # 2 clips per trial, batches of 4
    run_dir = tmp_path / "run"
    proc = start(run_dir, overrides)
    wait_for_line(proc, "epoch 1/")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    assert "resuming from" in run_train(run_dir, overrides).stdout
    same_results(run_dir, reference)
    weights = [(d / "model" / "model.safetensors").read_bytes() for d in (run_dir, reference)]
    assert weights[0] == weights[1]
    predict(tmp_path / "out", f"run={reference}", f"data.root={data}")  # eval.clips=2, flips
    assert_reproduces(pd.read_csv(tmp_path / "out" / "predictions.csv"), expected_rows(reference))


def test_the_view_and_ema_settings_reach_a_sagemaker_job() -> None:
    hps, sent = encoded([*RECIPE, "model=timesformer_tiny", "model.drop_path=0.1"])
    assert (hps["trainer__ema"], hps["data__clips_per_trial"], hps["eval__flip"]) == (
        "0.9", "2", "true"
    )  # fmt: skip
    assert sent["eval"]["clips"] == 2 and sent["model"]["drop_path"] == 0.1


def test_views_are_part_of_the_fingerprint_and_reporting_settings_are_not() -> None:
    base = fingerprint(compose_train(TINY))
    assert fingerprint(compose_train([*TINY, "eval.clips=3"])) != base
    assert fingerprint(compose_train([*TINY, "eval.bootstrap=10", "eval.plots=false"])) == base


# -- drop path ---------------------------------------------------------------------------------
def test_drop_path_sets_the_librarys_own_stochastic_depth() -> None:
    timesformer = build_model(
        compose_train(["model=timesformer_tiny", "model.drop_path=0.2"]).model, 8
    )
    layers = timesformer.net.timesformer.encoder.layer
    assert isinstance(layers[0].drop_path, torch.nn.Identity)  # linear from 0 at the first
    assert layers[-1].drop_path.drop_prob == pytest.approx(0.2)
    vjepa2 = build_model(compose_train(["model=vjepa2_tiny", "model.drop_path=0.2"]).model, 4)
    assert vjepa2.net.config.drop_path_rate == 0.2
    mvit = build_model(
        compose_train(["model=mvit_v2_s", "model.source=null", "model.drop_path=0.3"]).model, 16
    )
    rates = [m.p for m in mvit.net.modules() if isinstance(m, StochasticDepth)]
    assert rates == pytest.approx(np.linspace(0, 0.3, len(rates)))
    timm_cfg = compose_train(["model=frame_encoder_tiny", "model.drop_path=0.25"]).model
    encoder = build_model(timm_cfg, 4).net.encoder
    assert max(m.drop_prob for m in encoder.modules() if isinstance(m, DropPath)) == 0.25


@pytest.mark.parametrize("option", ["videomae_tiny", "r2plus1d_tiny"])
def test_drop_path_where_the_library_has_none_is_one_line(option: str) -> None:
    with pytest.raises(UserError, match=r"^model.drop_path=0.1: .* has no stochastic depth"):
        build_model(compose_train([f"model={option}", "model.drop_path=0.1"]).model, 8)


@pytest.mark.parametrize(
    ("experiment", "option"),
    [
        ("finetune_videomae", "videomae_base"),
        ("finetune_timesformer", "timesformer_k400"),
        ("finetune_torchvision_video", "r2plus1d_18"),
        ("probe_vjepa2", "vjepa2_vitl"),
        ("linear_probe", "resnet50_mean"),
    ],
)
def test_each_recipe_composes_with_its_models_and_survives_the_schema(
    experiment: str, option: str
) -> None:
    cfg = compose_train([f"experiment={experiment}", f"model={option}", "data.root=x"])
    assert cfg.model.family == compose_train([f"model={option}"]).model.family
    hps, _ = encoded([f"experiment={experiment}", f"model={option}"])
    assert len(hps) <= 100
