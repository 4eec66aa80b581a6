"""predict.py and the endpoint handler: the run's own predictions, from every kind of source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, roc_auc_score

from socal.data.clips import clip_positions
from socal.serving.endpoint import predict_fn
from socal.training.package import Predictor

from support import (
    REPO,
    TINY,
    assert_reproduces,
    assert_serves,
    expected_rows,
    model_archive,
    predict,
    run_train,
    synthetic_folder,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("predict"), trials=24, seed=4)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run_train(run_dir, [f"data.root={data_root}", *TINY, "trainer.epochs=2"])
    return run_dir


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> Path:
    return model_archive(run_dir, tmp_path_factory.mktemp("archive"))


def unlabelled_copy(data_root: Path, trials: list[str], dest: Path) -> Path:
    """Frames and frame map of ``trials`` only, without any outcomes file."""
    mapping = pd.read_csv(data_root / "frame_to_trial_mapping.csv")
    mapping = mapping[mapping.trial_id.isin(trials)]
    (dest / "JPEGImages").mkdir(parents=True)
    for frame in mapping.frame:
        (dest / "JPEGImages" / frame).symlink_to(data_root / "JPEGImages" / frame)
    mapping.to_csv(dest / "frame_to_trial_mapping.csv", index=False)
    return dest


def test_new_unlabelled_trials_get_the_runs_own_predictions(
    tmp_path: Path, run_dir: Path, data_root: Path
) -> None:
    expected = expected_rows(run_dir)
    folder = unlabelled_copy(data_root, list(expected.index), tmp_path / "new")
    predict(tmp_path / "out", f"run={run_dir}", f"data.root={folder}")
    predicted = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert sorted(predicted.trial) == sorted(expected.index)
    assert predicted.label.isna().all() and not (tmp_path / "out" / "metrics.json").exists()
    assert_reproduces(predicted, expected)


def format1_copy(package: Path, dest: Path) -> Path:
    """The package as socal wrote it before the model seam: a VideoMAE save_pretrained folder."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    info = json.loads((package / "socal.json").read_text())
    net = VideoMAEForVideoClassification(VideoMAEConfig.from_dict(info.pop("architecture")))
    weights = load_file(package / "model.safetensors")
    net.load_state_dict(weights)
    net.save_pretrained(dest)
    del info["family"], info["spec"], info["config"]["model"]["family"]
    (dest / "socal.json").write_text(json.dumps({**info, "format": 1}))
    return dest


def test_a_format_1_package_still_predicts_the_same(
    tmp_path: Path, run_dir: Path, data_root: Path
) -> None:
    package = format1_copy(run_dir / "model", tmp_path / "format1")
    predict(tmp_path / "out", f"run={package}", f"data.root={data_root}")
    assert_reproduces(pd.read_csv(tmp_path / "out" / "predictions.csv"), expected_rows(run_dir))


def test_labelled_trials_also_get_metrics(tmp_path: Path, run_dir: Path, data_root: Path) -> None:
    predict(tmp_path / "out", f"run={run_dir}", f"data.root={data_root}")
    predicted = pd.read_csv(tmp_path / "out" / "predictions.csv")
    outcomes = pd.read_csv(data_root / "socal_trial_outcomes.csv")
    # Every trial with frames, also S105T1, which has frames but no outcome row.
    assert "S105T1" in set(predicted.trial) and predicted.set_index("trial").label.isna()["S105T1"]
    assert_reproduces(predicted, expected_rows(run_dir))
    labelled = predicted.dropna(subset=["label"])
    assert len(labelled) == outcomes.success.notna().sum() - 3  # three rows have no video
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_labelled"] == len(labelled)
    assert metrics["test"]["auroc"] == pytest.approx(
        roc_auc_score(labelled.label, labelled.probability)
    )
    assert metrics["test"]["accuracy"] == pytest.approx(
        accuracy_score(labelled.label, labelled.probability >= metrics["threshold"])
    )


def test_a_model_tar_gz_predicts_the_same_from_disk_and_from_s3(
    tmp_path: Path, run_dir: Path, data_root: Path, archive: Path, bucket: str, aws: dict
) -> None:
    import boto3

    expected = expected_rows(run_dir)
    folder = unlabelled_copy(data_root, list(expected.index), tmp_path / "new")
    predict(tmp_path / "local", f"run={archive}", f"data.root={folder}")
    assert_reproduces(pd.read_csv(tmp_path / "local" / "predictions.csv"), expected)
    key = "socal/output/job-1/output/model.tar.gz"
    boto3.client("s3").upload_file(str(archive), bucket, key)
    predict(tmp_path / "s3", f"run=s3://{bucket}/{key}", f"data.root={folder}", env=aws)
    assert_reproduces(pd.read_csv(tmp_path / "s3" / "predictions.csv"), expected)


def test_bad_sources_end_with_one_clear_line(tmp_path: Path, data_root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "predict.py", f"run={tmp_path}", f"data.root={data_root}",
         f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "holds no socal model (socal.json)" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_archive_serves_as_a_sagemaker_endpoint(
    tmp_path: Path, run_dir: Path, data_root: Path, archive: Path
) -> None:
    assert_serves(archive, run_dir, data_root, tmp_path)


def test_the_endpoint_checks_frames_as_the_data_check_does(run_dir: Path, data_root: Path) -> None:
    """A truncated frame is its neighbour's pixels; a trial with no decodable frame is refused."""
    predictor = Predictor.load(run_dir, "cpu")
    mapping = pd.read_csv(data_root / "frame_to_trial_mapping.csv").sort_values("frame_number")
    trial = mapping.trial_id.iloc[0]
    frames = [
        (data_root / "JPEGImages" / f).read_bytes()
        for f in mapping[mapping.trial_id == trial].frame
    ]
    data = predictor.config.data
    window = data.window
    k = int(clip_positions(len(frames), data.num_frames, window.start_s, window.length_s, 0.5)[1])
    cut = [*frames[:k], frames[k][: len(frames[k]) // 2], *frames[k + 1 :]]  # a sampled frame
    neighbour = [*frames[:k], frames[k - 1], *frames[k + 1 :]]
    assert predict_fn([{"id": trial, "frames": cut}], predictor) == predict_fn(
        [{"id": trial, "frames": neighbour}], predictor
    )
    with pytest.raises(ValueError, match="no frame is a complete JPEG"):
        predict_fn([{"id": trial, "frames": [f[: len(f) // 2] for f in frames]}], predictor)
