"""``launch.py -m hydra/sweeper=sagemaker``: the search space, the tuning job, and a trial.

The tuning job is created on a real local AWS endpoint (moto server); a trial then runs through
the legacy training toolkit the PyTorch image starts tuning jobs with (sagemaker-training and
sagemaker-pytorch-training, their own ``train`` entry point), fetching the source archive the
launcher uploaded.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from socal.config import semantic_config
from socal.data.synthetic import SyntheticSpec, generate
from socal.errors import UserError
from socal.sagemaker import container, hyperparams, tuning, tuning_space
from socal.sagemaker import job as sagemaker_job
from socal.sagemaker.launch_config import register
from socal.sagemaker.tuning_space import check_candidates, search_space, split_overrides
from socal.training.checkpoint import step_files

from support import CONF, REPO, TINY_JOB
from test_launch import ROLE, clean_env, error_line, launch_without_torch

BASE = [o for o in TINY_JOB if not o.startswith("trainer.batch_size=")]
SPACE = [
    "optimizer.lr=tag(log,interval(1e-5,1e-3))",
    "trainer.dropout=interval(0.0,0.5)",
    "trainer.batch_size=4,8",
]


def planned(arguments: list[str]) -> tuple:
    """Launch side, in-process: the composed launch config, its group choices and the sweeps."""
    plain, sweeps = split_overrides(arguments)
    register()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("launch", overrides=plain, return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
    del cfg.hydra
    return cfg, choices, sweeps


def ranges(arguments: list[str]) -> dict[str, dict]:
    cfg, choices, sweeps = planned([*BASE, *arguments])
    train = sagemaker_job.training_config(cfg)
    hps = hyperparams.encode(train, choices)
    found = search_space(sweeps, train, hps, hyperparams.training_groups())
    check_candidates(train, hps, found)
    return {r.key: {"Kind": r.kind, **r.request()} for r in found}


def test_the_override_grammar_becomes_sagemaker_ranges() -> None:
    found = ranges(
        [
            *SPACE,
            "trainer.early_stopping.patience=interval(2,10)",
            "split.seed=range(0,4)",
            "data.augment.hflip=range(0.0,1.0,0.25)",
            "data.normalization=choice(imagenet,socal_release)",
            "data.augment.enabled=true,false",
            "trainer.checkpoint_every_steps=tag(log,interval(10,1000))",
        ]
    )
    assert found["optimizer__lr"] == {
        "Kind": "Continuous",
        "Name": "optimizer__lr",
        "MinValue": "1e-05",
        "MaxValue": "0.001",
        "ScalingType": "Logarithmic",
    }
    assert found["trainer__dropout"]["ScalingType"] == "Linear"
    assert found["trainer__batch_size"] == {
        "Kind": "Categorical",
        "Name": "trainer__batch_size",
        "Values": ["4", "8"],
    }
    # An interval on an integer setting, and Hydra's range(0,4) = 0, 1, 2, 3.
    patience = found["trainer__early_stopping__patience"]
    assert (patience["Kind"], patience["MinValue"], patience["MaxValue"]) == ("Integer", "2", "10")
    assert (found["split__seed"]["MinValue"], found["split__seed"]["MaxValue"]) == ("0", "3")
    assert found["data__augment__hflip"]["Values"] == ["0.0", "0.25", "0.5", "0.75"]
    assert found["data__normalization"]["Values"] == ["imagenet", "socal_release"]
    assert found["data__augment__enabled"]["Values"] == ["true", "false"]
    # Optional[int] with a null default: the schema says integer.
    assert found["trainer__checkpoint_every_steps"]["Kind"] == "Integer"
    assert found["trainer__checkpoint_every_steps"]["ScalingType"] == "Logarithmic"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("optimizer=adamw,sgd", "cannot choose between config groups"),
        ("sagemaker.spot=true,false", "sagemaker.spot is not a training setting"),
        ("data.root=a,b", "data.root is not a training setting"),
        ("optimizer.momentum=0.8,0.9", "optimizer.momentum is not a training setting"),
        ("trainer.epochs=1,2", "trainer.epochs is given a value and a search space"),
        ("optimizer.lr=tag(log,interval(0,1))", "must start above 0"),
        ("split.seed=tag(log,range(0,5))", "must start above 0"),
        ("optimizer.lr=interval(0.1,0.01)", "the interval's end must exceed its start"),
        ("split.folds=interval(1.5,3)", "integer setting: give integer bounds"),
        ("data.augment.hflip=range(0,1,0.03)", "34 values, SageMaker accepts at most 30"),
        ("optimizer.lr=tag(fast,interval(0.1,1))", "unknown tag 'fast'"),
        ("trainer.seed=1,x", "trainer.seed=x from the search space would not reach train.py"),
    ],
)
def test_what_cannot_be_tuned_is_refused_with_one_line(argument: str, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        ranges([argument])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["tuning.objective=val_auroc"], "set trainer.early_stopping.metric=val_auroc instead"),
        (["tuning.strategy=Grid"], "Grid searches lists of values only: optimizer.lr is a range"),
        (["tuning.strategy=Hyperband", "tuning.early_stopping_type=Auto"], "Hyperband stops"),
        (["tuning.strategy=Hyperband", "tuning.hyperband_min_epochs=2"], "between 1 and"),
        (["tuning.random_seed=0"], "tuning.random_seed=0: give a seed >= 1"),
        (["tuning.max_jobs=2", "tuning.max_parallel_jobs=3"], "exceeds tuning.max_jobs=2"),
        (["sagemaker.base_job_name=a-long-base-job-name"], "at most 18 characters"),
        (["launch.runs_per_job=all"], "a tuning job runs each trial as its own training job"),
    ],
)
def test_tuning_settings_are_checked_before_anything_is_uploaded(
    settings: list[str], message: str
) -> None:
    cfg, choices, sweeps = planned([*BASE, *SPACE, *settings])
    with pytest.raises(UserError, match=re.escape(message)):
        tuning.plan(cfg, choices, sweeps, dry_run=True)


def test_limits_count_every_hyperparameter_a_trial_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, choices, sweeps = planned([*BASE, *SPACE])
    request = tuning.plan(cfg, choices, sweeps, dry_run=True).request()
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    per_trial = len(static) + len(SPACE) + 1  # + _tuning_objective_metric, added by SageMaker
    monkeypatch.setattr(hyperparams, "MAX_HYPERPARAMETERS", per_trial)
    tuning.plan(cfg, choices, sweeps, dry_run=True)
    monkeypatch.setattr(hyperparams, "MAX_HYPERPARAMETERS", per_trial - 1)
    with pytest.raises(UserError, match=f"^{per_trial} hyperparameters per trial"):
        tuning.plan(cfg, choices, sweeps, dry_run=True)
    monkeypatch.setattr(tuning_space, "MAX_RANGES", len(SPACE) - 1)
    with pytest.raises(UserError, match=f"{len(SPACE)} tuned settings, a tuning job takes at most"):
        tuning.plan(cfg, choices, sweeps, dry_run=True)


def test_a_bad_search_is_one_error_line_and_uploads_nothing(
    aws: dict, bucket: str, tmp_path: Path
) -> None:
    env = clean_env(**aws, SOCAL_SAGEMAKER_ROLE=ROLE, SOCAL_S3_BUCKET=bucket)
    args = ["-m", "hydra/sweeper=sagemaker", *BASE, "launch.check_data=false"]
    for space, message in {
        "optimizer=adamw,sgd": "cannot choose between config groups",
        "trainer.seed=1,x": "trainer.seed=x from the search space would not reach train.py",
    }.items():
        result = subprocess.run(
            [sys.executable, "launch.py", *args, space, f"hydra.sweep.dir={tmp_path}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert message in error_line(result)
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=bucket)
    jobs = boto3.client("sagemaker").list_hyper_parameter_tuning_jobs(NameContains="socal-")
    assert jobs["HyperParameterTuningJobSummaries"] == []


def test_grid_takes_lists_and_runs_every_combination() -> None:
    cfg, choices, sweeps = planned([*BASE, "trainer.batch_size=4,8", "tuning.strategy=Grid"])
    request = tuning.plan(cfg, choices, sweeps, dry_run=True).request()
    assert (
        "MaxNumberOfTrainingJobs" not in request["HyperParameterTuningJobConfig"]["ResourceLimits"]
    )
    cfg, choices, sweeps = planned([*BASE, *SPACE[2:], "tuning.strategy=Grid", "tuning.max_jobs=2"])
    with pytest.raises(UserError, match="runs every combination: leave tuning.max_jobs"):
        tuning.plan(cfg, choices, sweeps, dry_run=True)


def test_a_misspelt_tuning_setting_fails_at_compose_time() -> None:
    with pytest.raises(Exception, match="Could not override 'tuning.max_job'"):
        planned(["tuning.max_job=3"])
    with pytest.raises(Exception, match="tuning.strategy=Bayes") as err:
        planned(["tuning.strategy=Bayes"])
    assert "[Bayesian, Random, Hyperband, Grid]" in str(err.value.__cause__)


def test_the_instance_accepts_tuned_values_and_refuses_any_other_change() -> None:
    cfg, choices, _ = planned(BASE)
    hps = hyperparams.encode(sagemaker_job.training_config(cfg), choices)
    placement = {"data.root": "/data", "trainer.checkpoint_dir": "/ckpt"}

    def check(changes: dict[str, str]) -> list[str]:
        given = hyperparams.received([], hyperparams.sm_hps({**hps, **changes}))
        rebuilt, _ = hyperparams.rebuild(given, placement)
        return hyperparams.verify(given, rebuilt)

    tuned = {hyperparams.TUNED_KEY: "optimizer__lr,trainer__dropout"}
    assert check({**tuned, "optimizer__lr": "0.0005", "trainer__dropout": "0.25"}) == [
        "optimizer__lr",
        "trainer__dropout",
    ]
    with pytest.raises(UserError, match="trainer__epochs changed since launch; the tuning job "):
        check({**tuned, "optimizer__lr": "0.0005", "trainer__epochs": "50"})
    with pytest.raises(UserError, match=r"nothing \(not launched as a tuning job\)"):
        check({"optimizer__lr": "0.0005"})


def test_each_trial_keeps_its_checkpoints_in_its_own_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(container.CHECKPOINT_ENV, "/ckpt/")
    monkeypatch.setenv("SM_CHANNEL_TRAINING", "/data")
    tuned = {hyperparams.TUNED_KEY: "optimizer__lr"}
    folders = set()
    for name in ("tune-1-001-aaaa1111", "tune-1-002-bbbb2222"):
        monkeypatch.setenv("TRAINING_JOB_NAME", name)
        folders.add(container.trial_placement(tuned)["trainer.checkpoint_dir"])
        assert container.trial_placement({})["trainer.checkpoint_dir"] == "/ckpt/"
    assert folders == {"/ckpt/tune-1-001-aaaa1111", "/ckpt/tune-1-002-bbbb2222"}
    monkeypatch.delenv("TRAINING_JOB_NAME")
    with pytest.raises(UserError, match="TRAINING_JOB_NAME is not set"):
        container.trial_placement(tuned)


def test_sm_hps_wins_over_the_legacy_toolkits_argv() -> None:
    """The toolkit's argv (str(): False, '' for None) loses types; SM_HPS keeps them."""
    from sagemaker_training import mapping

    cfg, choices, _ = planned(BASE)
    hps = hyperparams.encode(sagemaker_job.training_config(cfg), choices)
    sm_hps = hyperparams.sm_hps(hps)
    argv = mapping.to_cmd_args(json.loads(sm_hps))  # what the legacy toolkit passes
    assert "" in argv and "False" in argv
    placement = {"data.root": "/data", "trainer.checkpoint_dir": "/ckpt"}
    given = hyperparams.received(argv, sm_hps)
    assert given == hyperparams.received([], sm_hps)
    rebuilt, _ = hyperparams.rebuild(given, placement)
    assert hyperparams.verify(given, rebuilt) == []
    from_argv = hyperparams.received(argv, None)
    with pytest.raises(UserError):
        hyperparams.verify(from_argv, hyperparams.rebuild(from_argv, placement)[0])


def test_dry_run_prints_the_tuning_request_without_credentials_or_torch(tmp_path: Path) -> None:
    args = [
        "-m",
        "hydra/sweeper=sagemaker",
        "instance=g5_12xlarge",
        "sagemaker.region=eu-west-1",
        "launch.dry_run=true",
        "trainer.epochs=8",
        "trainer.early_stopping.metric=val_auroc",
        "tuning.strategy=Hyperband",
        "tuning.hyperband_min_epochs=2",
        "tuning.max_jobs=12",
        "tuning.max_parallel_jobs=3",
        *SPACE,
        f"hydra.sweep.dir={tmp_path}",
    ]
    _, printed = launch_without_torch(args)
    request = json.loads((tmp_path / tuning.REQUEST_FILE).read_text())
    assert printed == request

    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "best_val_auroc",
    }
    assert config["Strategy"] == "Hyperband"
    assert config["StrategyConfig"] == {
        "HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 8}
    }
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 3, "MaxNumberOfTrainingJobs": 12}
    ranges = config["ParameterRanges"]
    assert [r["Name"] for r in ranges["ContinuousParameterRanges"]] == [
        "optimizer__lr",
        "trainer__dropout",
    ]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "trainer__batch_size", "Values": ["4", "8"]}
    ]

    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert not {"optimizer__lr", "trainer__dropout", "trainer__batch_size"} & set(static)
    assert static["socal_tuned"] == "optimizer__lr,trainer__dropout,trainer__batch_size"
    # 4 GPUs: the legacy toolkit runs one process unless told to use torchrun.
    assert static["sagemaker_torch_distributed_enabled"] == "true"
    assert static["sagemaker_program"] == "train.py"
    name = request["HyperParameterTuningJobName"]
    assert static["sagemaker_submit_directory"].endswith(f"/socal/code/{name}/sourcedir.tar.gz")
    assert len(static) + 3 + 1 <= 100
    assert "ContainerEntrypoint" not in definition["AlgorithmSpecification"]
    assert definition["CheckpointConfig"]["S3Uri"].endswith(f"/socal/checkpoints/{name}")
    metrics = {
        m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]
    }
    line = "[2026-01-01 10:00:00,000][socal.training.run][INFO] - best_val_auroc=0.931"
    assert float(re.search(metrics["best_val_auroc"], line).group(1)) == 0.931
    assert re.search(metrics["val_auroc"], line) is None

    # The legacy toolkit installs only a root requirements.txt.
    with tarfile.open(tmp_path / "sourcedir.tar.gz") as tar:
        shipped = tar.extractfile("requirements.txt").read()
    assert shipped == (REPO / "socal" / "requirements" / "instance.txt").read_bytes()


def describe_tuning(name: str) -> dict:
    return boto3.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toolkit_trial(
    hps: dict[str, str], data: Path, root: Path, job_name: str, env: dict[str, str], ckpt: Path
) -> subprocess.CompletedProcess:
    """One trial as the PyTorch image runs it: the legacy toolkit's own ``train`` entry point.

    ``root`` plays /opt/ml (SAGEMAKER_BASE_DIR): hyperparameters.json with the trial's values,
    the training channel linked to ``data``, the host resolvable. ``ckpt`` plays
    /opt/ml/checkpoints: what SageMaker copies there from the tuning job's checkpoint prefix.
    """
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {}}))
    host = "localhost"
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": [host], "network_interface_name": "lo"})
    )
    (root / "input" / "data").mkdir()
    (root / "input" / "data" / "training").symlink_to(data, target_is_directory=True)
    env = {
        **{k: v for k, v in env.items() if k != "PYTHONPATH"},
        "SAGEMAKER_BASE_DIR": str(root),
        # What the PyTorch training image sets: its framework entry point.
        "SAGEMAKER_TRAINING_MODULE": "sagemaker_pytorch_container.training:main",
        "TRAINING_JOB_NAME": job_name,
        container.CHECKPOINT_ENV: str(ckpt),
        "PET_MASTER_PORT": str(free_port()),  # torchrun's port, when the trial uses torchrun
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PIP_NO_INDEX": "1",  # requirements.txt is already satisfied here: never download
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("train"))],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_tuning_job_on_a_local_endpoint_and_one_trial_through_the_legacy_toolkit(
    aws: dict, bucket: str, tmp_path: Path
) -> None:
    fixed = [*BASE, f"sagemaker.data_uri=s3://{bucket}/SOCAL", "launch.check_data=false"]
    settings = [
        "sagemaker.base_job_name=tune",
        "tuning.strategy=Random",
        "tuning.max_jobs=6",
        "tuning.max_parallel_jobs=2",
        "tuning.random_seed=7",
        "tuning.early_stopping_type=Auto",
    ]
    env = clean_env(**aws, SOCAL_SAGEMAKER_ROLE=ROLE, SOCAL_S3_BUCKET=bucket)
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "launch.py",
            "-m",
            "hydra/sweeper=sagemaker",
            *fixed,
            *settings,
            *SPACE,
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    request = json.loads((sweep / tuning.REQUEST_FILE).read_text())
    name = request["HyperParameterTuningJobName"]
    assert re.fullmatch(r"tune-\d{6}-\d{6}", name)
    job = describe_tuning(name)

    config, sent = job["HyperParameterTuningJobConfig"], request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "best_val_loss",
    }
    assert config["ParameterRanges"] == sent["ParameterRanges"]
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    assert (config["Strategy"], config["TrainingJobEarlyStoppingType"]) == ("Random", "Auto")
    assert sent["RandomSeed"] == 7  # moto does not keep RandomSeed: checked on our request
    definition, ours = job["TrainingJobDefinition"], request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert static == ours["StaticHyperParameters"]
    assert "sagemaker_torch_distributed_enabled" not in static  # one GPU: one process
    assert definition["AlgorithmSpecification"] == ours["AlgorithmSpecification"]
    assert (
        definition["CheckpointConfig"]
        == ours["CheckpointConfig"]
        == {
            "S3Uri": f"s3://{bucket}/socal/checkpoints/{name}",
            "LocalPath": "/opt/ml/checkpoints",
        }
    )
    assert {c["ChannelName"] for c in definition["InputDataConfig"]} == {"training", "sm_drivers"}
    for key in ("RoleArn", "ResourceConfig", "StoppingCondition"):
        assert definition[key] == ours[key]
    code = static["sagemaker_submit_directory"]
    code_bucket, _, code_key = code[len("s3://") :].partition("/")
    uploaded = boto3.client("s3").get_object(Bucket=code_bucket, Key=code_key)["Body"].read()
    assert uploaded == (sweep / "sourcedir.tar.gz").read_bytes()

    # A trial: SageMaker adds the tuned values and the objective to the static hyperparameters.
    data = generate(
        tmp_path / "SOCAL", SyntheticSpec(trials=16, min_frames=60, max_frames=90), progress=False
    )
    tuned = {"optimizer__lr": "0.0005", "trainer__dropout": "0.25", "trainer__batch_size": "8"}
    trial = f"{name}-003-5e1d2c9a"
    root = tmp_path / "opt_ml"
    hps = {**static, **tuned, "_tuning_objective_metric": "best_val_loss"}
    checkpoints = tmp_path / "checkpoints"
    run = toolkit_trial(hps, data, root, trial, env, checkpoints)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "--trainer__resume True" in output  # the toolkit's str() argv was in play
    assert (
        "changed since launch (tuning job): optimizer__lr, trainer__batch_size, trainer__dropout"
        in output
    )

    # Tuned values honoured, everything else exactly as sent.
    cfg, choices, _ = planned(fixed)
    expected = semantic_config(sagemaker_job.training_config(cfg))
    expected["optimizer"]["lr"], expected["trainer"]["dropout"] = 0.0005, 0.25
    expected["trainer"]["batch_size"] = 8
    trained = semantic_config(OmegaConf.load(root / "model" / "config.yaml"))
    assert trained == expected

    # The objective SageMaker reads: the last best_val_loss= line, the run's best validation loss.
    regex = {m["Name"]: m["Regex"] for m in ours["AlgorithmSpecification"]["MetricDefinitions"]}
    values = [float(m.group(1)) for m in re.finditer(regex["best_val_loss"], output)]
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert len(values) == metrics["epochs_trained"] + 1  # every epoch, then the final line
    assert values[-1] == pytest.approx(metrics["best_val"]["val_loss"], rel=1e-5)

    # Checkpoints in the trial's own folder under the tuning job's checkpoint prefix.
    assert [p.name for p in checkpoints.iterdir()] == [trial]
    assert step_files(checkpoints / trial)

    # Another trial finds the first one's checkpoints (one prefix for the whole tuning job) and
    # must not resume them. On a multi-GPU instance it runs under torchrun: two CPU processes.
    other = f"{name}-004-77aa01bc"
    multi = {**hps, "optimizer__lr": "0.0001", "sagemaker_torch_distributed_enabled": "true"}
    multi["sagemaker_mpi_num_of_processes_per_host"] = "2"  # the toolkit's count, GPUs here
    run = toolkit_trial(multi, data, tmp_path / "opt_ml_2", other, env, checkpoints)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "torchrun --nnodes 1 --nproc_per_node 2 train.py" in output
    assert "resuming from" not in output
    assert sorted(p.name for p in checkpoints.iterdir()) == [trial, other]
    config = OmegaConf.load(tmp_path / "opt_ml_2" / "model" / "config.yaml")
    assert config.optimizer.lr == 0.0001 and config.trainer.checkpoint_dir == str(
        checkpoints / other
    )
