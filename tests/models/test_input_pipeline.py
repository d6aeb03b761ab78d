import numpy as np
import pytest
import tensorflow as tf

from core import slices
from models import hard_negatives, input_pipeline
from models.config import testing_config
from tests.helpers import write_examples


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


def _batches_before_hard_negatives(file_patterns, config):
    """training_dataset's oversampling as it was before hard negatives (issue 14), kept to compare with."""
    decoded = input_pipeline._decoded(file_patterns, config.image_size, config.context_slices)
    has_tumor = lambda image, mask: tf.reduce_any(mask > 0)  # noqa: E731
    tumor = decoded.filter(has_tumor).repeat().shuffle(512, seed=config.seed)
    empty = decoded.filter(lambda image, mask: tf.logical_not(has_tumor(image, mask))).repeat().shuffle(512, seed=config.seed + 1)
    mixed = tf.data.Dataset.sample_from_datasets(
        [tumor, empty], weights=[config.tumor_slice_fraction, 1.0 - config.tumor_slice_fraction], seed=config.seed
    )
    return mixed.batch(config.batch_size, drop_remainder=True)


@pytest.mark.parametrize("with_pool", [False, True])
def test_without_hard_negatives_the_batches_are_those_of_before(records, with_pool):
    config = testing_config(batch_size=8, seed=3)
    assert config.hard_negative_fraction == 0.0  # off by default
    pool = hard_negatives.HardNegativePool.from_arrays(np.full((2, 32, 32, 3), -1.0, np.float32), np.ones(2, bool))
    dataset = input_pipeline.training_dataset([records], config, hard_negatives=pool.stream(seed=0) if with_pool else None)
    for (images, masks), (old_images, old_masks) in zip(dataset.take(6), _batches_before_hard_negatives([records], config).take(6)):
        np.testing.assert_array_equal(images.numpy(), old_images.numpy())
        np.testing.assert_array_equal(masks.numpy(), old_masks.numpy())
