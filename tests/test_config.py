"""Every option of every config group composes; typos and wrong types fail at compose time."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from support import CONF, compose_train

GROUPS = [
    "model", "optimizer", "scheduler", "data", "split", "trainer", "tracking", "eval", "experiment"
]  # fmt: skip
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes_and_resolves(group: str, option: str) -> None:
    cfg = compose_train([f"{group}={option}", "data.root=/data/SOCAL"])
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert set(resolved) == {
        "model", "optimizer", "scheduler", "data", "split", "trainer", "tracking", "eval"
    }  # fmt: skip


def test_each_group_has_the_options_users_are_promised() -> None:
    names = {g: {o for gg, o in OPTIONS if gg == g} for g in GROUPS}
    assert names["model"] >= {"videomae_base", "videomae_base_kinetics", "videomae_tiny"}
    assert names["optimizer"] >= {"adamw", "sgd"}
    assert names["scheduler"] >= {"plateau", "cosine", "none"}
    assert names["data"] >= {"socal", "synthetic"}
    assert names["split"] >= {"surgeon", "random", "kfold", "published"}
    assert names["experiment"] >= {"demo"}
    assert names["tracking"] >= {"none", "mlflow"}


def test_documented_keys_exist_with_their_types() -> None:
    cfg = compose_train(
        [
            "data.root=./SOCAL",
            "data.num_frames=8",
            "optimizer.lr=1e-4",
            "optimizer.weight_decay=0.1",
            "split.seed=3",
            "trainer.epochs=2",
            "trainer.batch_size=2",
            "trainer.num_workers=0",
            "trainer.seed=7",
            "trainer.device=cpu",
            "trainer.checkpoint_dir=/tmp/ck",
            "trainer.resume=false",
        ]
    )
    assert cfg.data.num_frames == 8 and cfg.optimizer.lr == 1e-4 and cfg.trainer.resume is False
    assert cfg.model.source == "MCG-NJU/videomae-base"


def test_sgd_has_momentum_and_nesterov() -> None:
    cfg = compose_train(["optimizer=sgd", "data.root=x"])
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.optimizer.momentum > 0 and cfg.optimizer.nesterov is True


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optimizer.lrr=1e-3", "optimizer.lrr"),
        ("trainer.epoch=3", "trainer.epoch"),
        ("trainer.epochs=three", "trainer.epochs"),
        ("trainer.device=tpu", "trainer.device"),
        ("optimizer.momentum=0.9", "optimizer.momentum"),  # adamw has no momentum
        ("data.window.length=30", "data.window.length"),
        ("model.arch.hiden_size=8", "model.arch.hiden_size"),
        # Renamed: the constants are the whole release's, not the training split's.
        ("data.normalization=socal", "data.normalization"),
        ("trainer.class_weight=inverse", "trainer.class_weight"),
        ("trainer.early_stopping.mode=maximum", "trainer.early_stopping.mode"),
        ("eval.bootstrap=many", "eval.bootstrap"),
        ("eval.treshold=0.3", "eval.treshold"),
    ],
)
def test_typo_or_wrong_type_fails_at_compose_time_naming_the_key(override: str, named: str) -> None:
    with pytest.raises(ConfigCompositionException, match=named.replace(".", r"\.")):
        compose_train(["data.root=x", override])


def test_unknown_group_option_is_rejected() -> None:
    with pytest.raises(ConfigCompositionException, match="optimizer"):
        compose_train(["optimizer=adam"])


def test_demo_experiment_is_self_contained() -> None:
    cfg = compose_train(["experiment=demo"])
    assert cfg.model.source is None and cfg.trainer.device.value == "cpu"
    assert cfg.data.synthetic is not None and "synthetic" in cfg.data.root


def test_class_weights_are_off_and_the_monitor_decides_its_direction_by_default() -> None:
    trainer = compose_train(["data.root=x"]).trainer
    assert trainer.pos_weight is None and trainer.class_weight is None
    assert trainer.early_stopping.mode is None
