"""Scheduled retraining, locally: two spans in a row; only a model that is not worse replaces the served one."""

import os
import shutil

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
import tifffile

from components.anomalies_gate import DataValidationError
from core import slices, synthetic_data
from models.config import testing_config
from pipeline import run_summary
from pipeline.config import IngestionConfig, testing_pipeline_config
from pipeline.local_runner import run_local
from pipeline.pipeline import LOCAL, Capabilities

pytestmark = pytest.mark.e2e
SPANS = IngestionConfig(span_pattern="span-{SPAN}")


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    # Seeds 0 and 2 give every split at least one of the 6 patients (hash of the case id).
    synthetic_data.generate_dataset(str(root / "span-1"), 6, 10, seed=0)
    synthetic_data.generate_dataset(str(root / "span-2"), 6, 10, seed=2)
    return str(root)


@pytest.mark.parametrize("capabilities", [LOCAL, Capabilities(resolvers=False)], ids=["resolvers", "kfp-without-resolvers"])
def test_a_worse_candidate_is_not_pushed_and_the_served_model_stays(spans, tmp_path, capabilities):
    """Both ways of finding the served model (Resolver; LatestPushedModel on KFP) decide the same."""
    # The full class weight (exponent 1): at 32x32 and 12 epochs the default square root has not yet learned any tumor.
    good = testing_config(epochs=12, early_stopping_patience=12, learning_rate=5e-3, positive_weight_exponent=1.0)
    config = testing_pipeline_config(spans, str(tmp_path), training=good, ingestion=SPANS, small_tumor_guard=False)
    os.rename(os.path.join(spans, "span-2"), os.path.join(spans, "hidden-2"))  # only span 1 exists at first
    try:
        first = run_local(config, capabilities)
    finally:
        os.rename(os.path.join(spans, "hidden-2"), os.path.join(spans, "span-2"))
    assert first.blessed and first.pushed_to
    assert first.metrics_by_slice["overall"]["dice_per_tumor_slice_mean"] > 0.2

    # Span 2 arrives; the candidate is deliberately broken: one epoch at a learning rate that cannot learn.
    broken = testing_config(epochs=1, learning_rate=1e-7)
    second_config = testing_pipeline_config(spans, str(tmp_path), training=broken, ingestion=SPANS, small_tumor_guard=False)
    second = run_local(second_config, capabilities)
    trainer = next(run for run in second.components if run.component == "Trainer")
    assert trainer.state == "complete"  # it trained on the new span
    assert second.blessed is False and second.pushed_to is None
    assert os.listdir(os.path.join(str(tmp_path), "serving_model")) == [os.path.basename(first.pushed_to)]
    # The refusal is the comparison with the served model (a diff metric), not the absolute floors (0 here):
    # the tumor-slice Dice's, and possibly the per-patient Dice's (the same tolerance).
    evaluation = next(run for run in second.components if run.component == "Evaluator").outputs["evaluation"][0].uri
    failures = [f for s in tfma.load_validation_result(evaluation).metric_validations_per_slice for f in s.failures]
    assert failures and all(f.metric_key.is_diff for f in failures)
    names = {f.metric_key.name for f in failures}
    assert "dice_per_tumor_slice_mean" in names and names <= {"dice_per_tumor_slice_mean", "dice_per_patient_mean"}


def test_a_span_from_a_brighter_scanner_stops_before_training(tiny_dataset, tmp_path):
    """The drift check compares the new span's statistics with the previous run's (the Resolver runs first)."""
    shutil.copytree(tiny_dataset, tmp_path / "data" / "span-1")
    shutil.copytree(tiny_dataset, tmp_path / "hidden-2")
    for pair in slices.find_slice_pairs(str(tmp_path / "hidden-2")):  # same patients and masks, 1.5x the intensities
        image = tifffile.imread(pair.image_path).astype(np.float32) * 1.5
        tifffile.imwrite(pair.image_path, np.clip(image, 0, 255).astype(np.uint8))
    config = testing_pipeline_config(str(tmp_path / "data"), str(tmp_path / "out"), ingestion=SPANS, max_drift=0.05)
    first = run_local(config)
    assert first.pushed_to
    os.rename(tmp_path / "hidden-2", tmp_path / "data" / "span-2")
    with pytest.raises(DataValidationError, match="feature 'mean_intensity_flair' drifted since the previous run") as failure:
        run_local(config)
    assert "tumor_pixel_fraction" not in str(failure.value)
    ran = run_summary.latest_component_runs(run_summary.open_store(config.metadata_path), config.pipeline_name)
    assert [run.state for run in ran if run.component == "AnomaliesGate"] == ["failed"]
    assert os.listdir(config.serving_dir) == [os.path.basename(first.pushed_to)]
