"""Fine-tuning recipes: per-layer learning rates, no decay on norms and biases, frozen layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from socal.config import compose_train
from socal.errors import UserError
from socal.models import build_model
from socal.training.optim import build_optimizer
from socal.training.runtime import seed_everything

from support import TINY, encoded, run_train, synthetic_folder


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
