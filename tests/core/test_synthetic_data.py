import numpy as np
import pytest

from core import slices, synthetic_data


def test_layout_and_determinism(tiny_dataset, tmp_path):
    pairs = slices.find_slice_pairs(tiny_dataset)
    assert len(pairs) == 6 * 10
    assert len({p.case_id for p in pairs}) == 6
    again = tmp_path / "again"
    synthetic_data.generate_dataset(str(again), 1, 10, seed=0)
    first = [p for p in pairs if p.case_id == synthetic_data.case_id(0, 0)]
    for original, regenerated in zip(first, slices.find_slice_pairs(str(again))):
        for a, b in zip(slices.read_pair(original), slices.read_pair(regenerated)):
            np.testing.assert_array_equal(a, b)


def test_slices_look_like_kaggle_3m(tiny_dataset):
    pairs = slices.find_slice_pairs(tiny_dataset)
    tumor_pixels = []
    for pair in pairs:
        image, mask = slices.read_pair(pair)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        tumor_pixels.append(int(mask.sum()))
        if mask.any():
            # FLAIR (channel 1) is brighter in the lesion than in the rest of the brain.
            brain = (image.max(axis=-1) > 10) & (mask == 0)
            assert image[..., 1][mask > 0].mean() > image[..., 1][brain].mean()
    tumor_pixels = np.array(tumor_pixels)
    assert 0.1 < (tumor_pixels > 0).mean() < 0.6
    assert tumor_pixels[tumor_pixels > 0].min() < 300 < tumor_pixels.max()


def test_different_seeds_give_different_patients(tmp_path):
    synthetic_data.generate_dataset(str(tmp_path / "a"), 1, 3, seed=1, image_size=64)
    synthetic_data.generate_dataset(str(tmp_path / "b"), 1, 3, seed=2, image_size=64)
    a = slices.read_image(slices.find_slice_pairs(str(tmp_path / "a"))[1].image_path)
    b = slices.read_image(slices.find_slice_pairs(str(tmp_path / "b"))[1].image_path)
    assert a.shape == (64, 64, 3) and not np.array_equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(patients=0, slices=1), dict(patients=1, slices=0), dict(patients=1, slices=1, image_size=8)])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        synthetic_data.generate_dataset(str(tmp_path), seed=0, **kwargs)


def test_heads_give_every_second_default_patient_a_head_and_leave_the_others_as_they_are():
    for index in range(4):
        _, (images, masks, _) = synthetic_data.FAMILIES["heads"].draw(index, 0, 6, 96)
        _, (stripped, stripped_masks, _) = synthetic_data.FAMILIES["default"].draw(index, 0, 6, 96)
        np.testing.assert_array_equal(masks, stripped_masks)
        if index % 2 == 0:
            np.testing.assert_array_equal(images, stripped)
            continue
        outside_brain = stripped.max(axis=-1) < 8
        # Skull and scalp: signal where the stripped patient has only background noise.
        assert ((images.max(axis=-1) > 40) & outside_brain).mean() > 0.05
        # At the skull base something outside the brain is brighter on FLAIR than most of the brain.
        lowest_flair = images[:2, ..., 1][outside_brain[:2]]
        assert lowest_flair.max() > np.percentile(stripped[..., 1][~outside_brain], 90)
