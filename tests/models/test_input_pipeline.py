import numpy as np
import pytest
import tensorflow as tf

from core import slices
from models import input_pipeline
from models.config import testing_config
from tests.helpers import square_example, write_examples


@pytest.fixture(scope="module")
def records(tiny_dataset, tmp_path_factory):
    return write_examples(tiny_dataset, str(tmp_path_factory.mktemp("records")))


def test_parse_round_trips_the_slices(records, tiny_dataset):
    serialized = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(records), compression_type="GZIP").batch(3)))
    images, masks = input_pipeline.parse_examples(serialized)
    first = slices.find_slice_pairs(tiny_dataset)[0]
    image, mask = slices.read_pair(first)
    assert images.shape == (3, 256, 256, 3) and masks.shape == (3, 256, 256, 1)
    np.testing.assert_array_equal(images[0].numpy(), image)
    np.testing.assert_array_equal(masks[0, ..., 0].numpy(), mask)


def test_count_slices(records, tiny_dataset):
    pairs = slices.find_slice_pairs(tiny_dataset)
    tumor = sum(int(slices.read_mask(p.mask_path).any()) for p in pairs)
    assert input_pipeline.count_slices([records]) == (len(pairs), tumor)


def test_training_batches_oversample_tumor_slices(records):
    config = testing_config(batch_size=16, tumor_slice_fraction=0.75, augment=False)
    batches = input_pipeline.training_dataset([records], config).take(8)
    fractions = [float(tf.reduce_mean(tf.cast(tf.reduce_any(masks > 0, axis=[1, 2, 3]), tf.float32))) for _, masks in batches]
    assert 0.6 < np.mean(fractions) < 0.9  # the data itself has about a quarter tumor slices


def test_training_batches_have_the_configured_shapes_and_binary_masks(records):
    config = testing_config(batch_size=4)
    images, masks = next(iter(input_pipeline.training_dataset([records], config)))
    assert images.shape == (4, 32, 32, 3) and masks.shape == (4, 32, 32, 1)
    assert set(np.unique(masks.numpy())) <= {0.0, 1.0}


@pytest.mark.parametrize("seed", range(4))
def test_augmentation_moves_image_and_mask_together(seed):
    image, mask = square_example()
    augmented_image, augmented_mask = input_pipeline.augment(tf.constant(image), tf.constant(mask), tf.constant([seed, 7], tf.int64))
    assert set(np.unique(augmented_mask.numpy())) <= {0.0, 1.0}
    inside = augmented_mask.numpy()[..., 0] > 0
    outside = augmented_mask.numpy()[..., 0] == 0
    assert inside.sum() > 200  # the square survives rotation, scaling and shift
    # The image follows the mask: bright inside, dark outside (away from interpolated edges).
    assert np.median(augmented_image.numpy()[inside].mean(-1)) > 100
    assert np.median(augmented_image.numpy()[outside].mean(-1)) < 5


def test_augmentation_is_random_but_reproducible():
    image, mask = square_example()
    a = input_pipeline.augment(tf.constant(image), tf.constant(mask), tf.constant([1, 2], tf.int64))[0]
    b = input_pipeline.augment(tf.constant(image), tf.constant(mask), tf.constant([1, 2], tf.int64))[0]
    c = input_pipeline.augment(tf.constant(image), tf.constant(mask), tf.constant([3, 4], tf.int64))[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


def test_evaluation_dataset_yields_every_slice_once(records, tiny_dataset):
    config = testing_config(batch_size=7)
    total = sum(int(images.shape[0]) for images, _ in input_pipeline.evaluation_dataset([records], config))
    assert total == len(slices.find_slice_pairs(tiny_dataset))


def test_no_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no TFRecord files match"):
        input_pipeline.count_slices([str(tmp_path / "*.gz")])


def test_patch_training_batches_are_patches_of_the_slices(records):
    config = testing_config(image_size=64, patch_size=32, tumor_patch_fraction=1.0, batch_size=16, tumor_slice_fraction=0.9)
    images, masks = next(iter(input_pipeline.training_dataset([records], config)))
    assert images.shape == (16, 32, 32, 3) and masks.shape == (16, 32, 32, 1)
    # Tumor slices are oversampled to 0.9 and every patch of a tumor slice is centered on tumor.
    assert np.mean(np.any(masks.numpy() > 0, axis=(1, 2, 3))) >= 0.7


def test_batch_augmentation_draws_each_slice_independently_and_keeps_pairs_together():
    image, mask = square_example()
    images, masks = input_pipeline.augment_batch(tf.constant([image] * 6), tf.constant([mask] * 6), tf.constant([5, 9], tf.int64))
    assert images.shape == (6, *image.shape) and masks.shape == (6, *mask.shape)
    assert len({masks[i].numpy().tobytes() for i in range(6)}) == 6  # six different geometric draws
    for augmented_image, augmented_mask in zip(images.numpy(), masks.numpy()):
        inside, outside = augmented_mask[..., 0] > 0, augmented_mask[..., 0] == 0
        assert inside.sum() > 200
        assert np.median(augmented_image[inside].mean(-1)) > 100 and np.median(augmented_image[outside].mean(-1)) < 5
