"""End-to-end on volumes: the whole pipeline on generated BraTS-style NIfTI cases, then predict and evaluate."""

import os

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from core import metrics, synthetic_data
from data_schema import features
from pipeline import run_summary
from pipeline.config import testing_pipeline_config
from pipeline.local_runner import run_local
from unet4mri import cli, evaluate, report
from unet4mri.volume_prediction import PREDICTION_SUFFIX

pytestmark = pytest.mark.e2e

# Seed 0 puts 4 / 1 / 1 of these 6 patients in train / eval / test (as tests/conftest.py's TIFF ones).
PATIENTS, SLICES, SIZE = 6, 8, 32


@pytest.fixture(scope="module")
def volume_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("nifti_data")
    synthetic_data.generate_volume_dataset(str(data), PATIENTS, SLICES, seed=0, image_size=SIZE)
    config = testing_pipeline_config(str(data), str(tmp_path_factory.mktemp("nifti_run")))
    return str(data), config, run_local(config)


def test_the_pipeline_trains_and_pushes_on_nifti_cases(volume_run):
    _, config, summary = volume_run
    assert all(run.state == "complete" for run in summary.components), summary.components
    assert summary.pushed_to and summary.rejected_files == 0
    store = run_summary.open_store(config.metadata_path)
    examples_uri = store.get_artifacts_by_type("Examples")[0].uri
    files = tf.io.gfile.glob(os.path.join(examples_uri, "Split-train", "*"))
    example = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(files, compression_type="GZIP"))).numpy())
    spacing = example.features.feature[features.PIXEL_SPACING_MM].float_list.value[0]
    assert spacing == pytest.approx(synthetic_data.FIELD_OF_VIEW_MM / 256)
    assert example.features.feature[features.SLICE_SPACING_MM].float_list.value[0] > 5


def test_predicted_masks_lie_on_the_scans_and_overlap_the_truth_by_the_reported_dice(volume_run, tmp_path):
    data, _, summary = volume_run
    out = tmp_path / "predicted"
    assert cli.main(["predict", "--model", summary.pushed_to, "--input", data, "--output", str(out)]) == 0
    assert cli.main(["evaluate", "--model", summary.pushed_to, "--data-dir", data, "--output", str(tmp_path / "e.json")]) == 0
    result = evaluate.evaluate_volumes(summary.pushed_to, data)
    assert len(result["patients"]) == PATIENTS
    for patient in result["patients"]:
        case = patient["case_id"]
        scan = nib.load(os.path.join(data, case, f"{case}_flair.nii.gz"))
        truth = np.asarray(nib.load(os.path.join(data, case, f"{case}_seg.nii.gz")).dataobj)
        predicted = nib.load(out / case / f"{case}{PREDICTION_SUFFIX}")
        assert predicted.shape == scan.shape and np.array_equal(predicted.affine, scan.affine)
        mask = np.asarray(predicted.dataobj)
        dice = metrics.dice_from_counts(float((mask & (truth > 0)).sum()), float((truth > 0).sum()), float(mask.sum()))
        assert (patient["dice"] is None and np.isnan(dice)) or patient["dice"] == pytest.approx(dice)


def test_the_report_shows_hd95_and_volume_error_of_the_test_patients(volume_run, tmp_path):
    _, config, _ = volume_run
    with open(report.build_report(config.output_dir, str(tmp_path / "report.html"))) as page:
        text = page.read()
    assert "Volumes (test patients" in text and "hd95_mm_mean" in text and "volume_error_ml_median" in text


def test_a_rerun_is_cached(volume_run):
    _, config, _ = volume_run
    states = {run.component: run.state for run in run_local(config).components}
    assert states["FileBasedExampleGen"] == states["Trainer"] == "cached", states
