"""The run summary's text: patients per split, and the warning where a split holds too few."""

import dataclasses

import pytest

from pipeline.run_summary import FEW_PATIENTS, RunSummary, format_summary


def _summary(patients_by_split: dict[str, int]) -> str:
    summary = RunSummary(components=[], metrics_by_slice={}, blessed=True, pushed_to=None, positive_pixel_weight=None)
    splits = {split: {"slices": 20 * count, "patients": count, "buckets": {}} for split, count in patients_by_split.items()}
    return format_summary(dataclasses.replace(summary, splits=splits))


def test_patients_per_split_are_listed_in_train_eval_test_order():
    assert "Patients per split: train 25, eval 8, test 7" in _summary({"eval": 8, "test": 7, "train": 25})


def test_enough_patients_in_every_split_give_no_warning():
    assert "Only" not in _summary({"train": 25, "eval": FEW_PATIENTS, "test": FEW_PATIENTS})


@pytest.mark.parametrize(
    "split, rests_on",
    [("eval", "the best epoch, early stopping and the post-processing"), ("test", "the test metrics and the blessing")],
)
def test_a_split_with_too_few_patients_is_named_with_what_rests_on_it(split, rests_on):
    patients = {"train": 12, "eval": 4, "test": 4, split: FEW_PATIENTS - 1}
    warnings = [line for line in _summary(patients).splitlines() if line.startswith("Only ")]
    assert len(warnings) == 1
    assert f"Only {FEW_PATIENTS - 1} patients in the {split} split" in warnings[0] and rests_on in warnings[0]
