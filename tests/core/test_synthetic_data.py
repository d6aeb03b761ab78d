import numpy as np
import pytest
from scipy import ndimage

from core import mni_templates, slices, synthetic_data


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


def test_varied_lesions_keep_the_heads_patients_and_draw_their_lesions_from_wide_ranges():
    counts, t1_ratios = {"heads": 0, "varied": 0}, {"heads": [], "varied": []}
    for index in range(6):
        drawn = {family: synthetic_data.FAMILIES[family].draw(index, 0, 12, 96)[1] for family in counts}
        (images, masks, _), (heads, heads_masks, _) = drawn["varied"], drawn["heads"]

        # The same patient (placement, and a head on the same ones) with other lesions (and so other noise).
        def body(volume):
            return ndimage.uniform_filter(volume.max(axis=-1).astype(np.float32), size=(1, 5, 5)) > 20

        assert (body(images) == body(heads)).mean() > 0.98
        assert not np.array_equal(masks, heads_masks)
        for family, (volume, labels, _) in drawn.items():
            inside = labels > 0
            counts[family] += ndimage.label(inside)[1]
            core_pixels = ndimage.binary_erosion(inside)
            around = (volume[..., 0] > 60) & ~ndimage.binary_dilation(inside, iterations=3)
            if core_pixels.any():
                t1_ratios[family].append(volume[..., 0][core_pixels].mean() / volume[..., 0][around].mean())
    assert counts["varied"] > counts["heads"]  # up to two lesions more per patient
    assert max(t1_ratios["heads"]) < 0.9 < 1.0 < max(t1_ratios["varied"])  # T1-dark only, against dark, iso or bright


def test_a_lesion_edge_fades_over_its_width_around_the_same_outline():
    templates = mni_templates.load()
    coordinates = synthetic_data._sampling_grid(np.random.default_rng(0), templates, 8, 64)

    def lesion(edge):
        return synthetic_data._lesion(np.random.default_rng(1), templates, coordinates, radius=20.0, edge=edge)[0]

    sharp, default, soft = lesion(0.16), lesion(None), lesion(0.6)
    np.testing.assert_allclose(sharp, default, atol=1e-6)  # 0.16 is the default's edge
    np.testing.assert_array_equal(soft > 0.5, sharp > 0.5)  # the mask's outline does not move
    fading = [((weight > 0.05) & (weight < 0.95)).sum() for weight in (sharp, soft)]
    assert fading[1] > 2 * fading[0]
