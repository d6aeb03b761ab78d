"""The `unseen` synthetic family: deterministic, readable, and different from the default where docs/data.md says."""

import numpy as np
import pytest

from core import slices, synthetic_data, synthetic_unseen, volumes
from data_schema import features

SLICES = 12


@pytest.fixture(scope="module")
def unseen_patients():
    """4 unseen patients x 12 slices of 256x256, in memory: (images, masks, brain weight) each."""
    return [synthetic_unseen.render(np.random.default_rng([0, index]), SLICES, 256) for index in range(4)]


def test_files_are_deterministic_readable_and_named_apart(tmp_path):
    for folder in ("a", "b"):
        ids = synthetic_data.generate_dataset(str(tmp_path / folder), 2, 3, seed=5, image_size=64, family="unseen")
    assert ids == ["UNS_TA_0005_0000", "UNS_TB_0005_0001"]
    assert not set(ids) & {synthetic_data.case_id(index, 5) for index in range(2)}
    pairs_a, pairs_b = (slices.find_slice_pairs(str(tmp_path / folder)) for folder in ("a", "b"))
    assert len(pairs_a) == 6 and {pair.case_id for pair in pairs_a} == set(ids)
    for first, second in zip(pairs_a, pairs_b):
        (image, mask), (image_again, mask_again) = slices.read_pair(first), slices.read_pair(second)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        np.testing.assert_array_equal(image, image_again)
        np.testing.assert_array_equal(mask, mask_again)


def test_nifti_cases_load_with_the_family_field_of_view(tmp_path):
    synthetic_data.generate_volume_dataset(str(tmp_path), 1, 3, seed=0, image_size=64, family="unseen")
    cases, problems = volumes.find_volume_cases(str(tmp_path))
    assert not problems and [case.case_id for case in cases] == ["UNS_TA_0000_0000"]
    loaded = volumes.load_case(cases[0])
    assert loaded.images.shape == (64, 64, 3, 3) and loaded.mask.shape == (64, 64, 3)
    assert loaded.spacing_mm[0] == pytest.approx(synthetic_unseen.FIELD_OF_VIEW_MM / 64)


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic family 'other'"):
        synthetic_data.generate_dataset(str(tmp_path), 1, 1, seed=0, family="other")


def test_masks_lie_in_the_brain_on_flair_hyperintense_lesions(unseen_patients):
    for images, masks, _, brain in unseen_patients:
        assert set(np.unique(masks)) <= {0, 1}
        assert (brain[masks > 0] > 0.5).all()
        for image, mask, weight in zip(images, masks, brain):
            if mask.sum() >= 20:
                healthy = (weight > 0.9) & (mask == 0)
                assert image[..., 1][mask > 0].mean() > image[..., 1][healthy].mean()


def test_head_structures_surround_the_brain_and_shine_on_flair_at_the_skull_base(unseen_patients):
    for images, _, _, brain in unseen_patients:
        lowest, flair = images[0], images[0, ..., 1]
        outside_brain = (brain[0] < 0.05) & (lowest.max(-1) > 40)  # skull base, orbits, sinuses, scalp
        assert outside_brain.mean() > 0.15
        # Fat and mucosa outside the brain are as bright on FLAIR as the brightest brain tissue.
        assert np.percentile(flair[outside_brain], 99) > np.percentile(flair[brain[0] > 0.9], 90)
        # Every slice is framed by scalp: a ring of signal around the brain.
        middle = SLICES // 2
        assert (images[middle].max(-1)[brain[middle] < 0.05] > 40).mean() > 0.1


def test_more_small_tumors_than_the_default_family(unseen_patients):
    def small_fraction(all_masks) -> float:
        areas = [int(mask.sum()) for masks in all_masks for mask in masks if mask.any()]
        return np.mean([features.tumor_size_bucket(area) == features.BUCKET_SMALL for area in areas])

    default = [synthetic_data._synthesize(np.random.default_rng([0, index]), SLICES, 256)[1] for index in range(4)]
    unseen = [masks for _, masks, _, _ in unseen_patients]
    assert small_fraction(unseen) > 0.35
    assert small_fraction(unseen) > small_fraction(default) + 0.15
