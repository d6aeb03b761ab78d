import keras
import numpy as np
import pytest
import tensorflow as tf

from core import slices, synthetic_data
from models import hard_negatives, input_pipeline
from models.config import testing_config
from tests.helpers import write_examples

TRAIN_CASES = [synthetic_data.case_id(i, 0) for i in (0, 1, 3, 4)]


@pytest.fixture(scope="module")
def train_records(tiny_dataset, tmp_path_factory):
    return write_examples(tiny_dataset, str(tmp_path_factory.mktemp("records")), TRAIN_CASES)


def _numbered_pool(ends) -> hard_negatives.HardNegativePool:
    """Slice i of the pool is a 4x4x3 image of value i, so a drawn image names its slice."""
    images = np.stack([np.full((4, 4, 3), i, np.float32) for i in range(len(ends))])
    return hard_negatives.HardNegativePool.from_arrays(images, np.array(ends))


def _last_slice_index(pairs, case: str) -> int:
    return max(pair.slice_index for pair in pairs if pair.case_id == case)


def _drawn(iterator, count: int) -> list[int]:
    return [int(next(iterator)[0][0, 0, 0]) for _ in range(count)]


def test_volume_ends_are_a_tenth_of_each_case_at_each_end_at_least_one():
    long_case = np.arange(1, 21)[::-1]  # 20 slices in any order: 2 per end
    short_case = np.array([5, 3, 7, 4, 6])  # 5 slices from 3: 1 per end
    case_ids = np.array(["long"] * 20 + ["short"] * 5 + ["single"])
    ends = hard_negatives.end_of_volume(case_ids, np.concatenate([long_case, short_case, [12]]))
    assert sorted(long_case[ends[:20]]) == [1, 2, 19, 20]
    assert sorted(short_case[ends[20:25]]) == [3, 7]
    assert ends[25]
    with pytest.raises(ValueError, match="fraction must be in"):
        hard_negatives.end_of_volume(case_ids, np.arange(26), fraction=0.0)


def test_the_pool_holds_the_tumor_free_slices_and_starts_with_their_volume_ends(train_records, tiny_dataset):
    config = testing_config(image_size=256)  # the native size: tumor-free here means tumor-free in the files
    pool = hard_negatives.load_pool([train_records], config)
    pairs = [pair for pair in slices.find_slice_pairs(tiny_dataset) if pair.case_id in TRAIN_CASES]
    tumor_free = [pair for pair in pairs if not slices.read_mask(pair.mask_path).any()]
    volume_ends = {(case, index) for case in TRAIN_CASES for index in (1, _last_slice_index(pairs, case))}  # 10 slices: 1 per end
    expected_ends = [(pair.case_id, pair.slice_index) in volume_ends for pair in tumor_free]
    assert len(pool.ends) == len(tumor_free) and pool.ends.tolist() == expected_ends and 0 < sum(expected_ends) < len(tumor_free)
    assert pool.flags.numpy().tolist() == [float(end) for end in expected_ends] and pool.size == sum(expected_ends)
    # The same decoded slices as the input pipeline's tumor-free ones, in file order.
    decoded = [
        image
        for images, masks in input_pipeline.evaluation_dataset([train_records], config)
        for image, mask in zip(images, masks)
        if not np.any(mask.numpy() > 0)
    ]
    np.testing.assert_array_equal(pool.images.numpy(), np.stack(decoded))


def test_hard_negatives_fill_their_share_of_the_tumor_free_part_of_the_batches(train_records):
    config = testing_config(batch_size=16, tumor_slice_fraction=0.5, hard_negative_fraction=0.5)
    marked = hard_negatives.HardNegativePool.from_arrays(np.full((3, 32, 32, 3), -1.0, np.float32), np.ones(3, bool))
    dataset = input_pipeline.training_dataset([train_records], config, hard_negatives=marked.stream(seed=5))
    hard = tumor = total = 0
    for images, masks in dataset.take(40):
        hard += int(np.sum(np.all(images.numpy() == -1.0, axis=(1, 2, 3))))  # real slices are never negative
        tumor += int(np.sum(np.any(masks.numpy() > 0, axis=(1, 2, 3))))
        total += int(images.shape[0])
    # 640 slices: the shares' standard deviations are about 0.02.
    assert hard / total == pytest.approx(config.hard_negative_fraction * (1 - config.tumor_slice_fraction), abs=0.06)
    assert tumor / total == pytest.approx(config.tumor_slice_fraction, abs=0.08)


def test_a_slice_the_miner_flags_is_drawn_from_then_on():
    pool = _numbered_pool([True, False, False, False])
    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(1, 1)
    network = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.array([1.0, 0.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.array([-2.5], np.float32)])  # fires on slice 3
    draws = iter(pool.stream(seed=0))
    assert set(_drawn(draws, 30)) == {0}  # the volume end only
    logs = {}
    hard_negatives.HardNegativeMiner(pool, network, batch_size=3).on_epoch_end(0, logs)
    assert logs == {hard_negatives.POOL_LOG_KEY: 2.0} and pool.flags.numpy().tolist() == [1.0, 0.0, 0.0, 1.0]
    # The same iterator reads the updated flags; tf.data may have prefetched a few draws before the update.
    later = _drawn(draws, 100)[20:]
    assert set(later) == {0, 3} and 20 < later.count(3) < 60
    layer.set_weights([np.zeros((1, 1, 3, 1), np.float32), np.array([-1.0], np.float32)])  # fires nowhere
    hard_negatives.HardNegativeMiner(pool, network, batch_size=3).on_epoch_end(1, logs)
    assert pool.size == 1 and set(_drawn(draws, 100)[20:]) == {0}  # the end stays, the former false positive leaves


def test_an_empty_pool_draws_among_all_slices_and_does_not_stall():
    pool = _numbered_pool([False, False, False, False])
    assert pool.size == 0
    drawn = _drawn(iter(pool.stream(seed=1)), 200)
    assert set(drawn) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="one or more slices"):
        hard_negatives.HardNegativePool.from_arrays(np.zeros((0, 4, 4, 3), np.float32), np.zeros(0, bool))


def test_the_stream_is_reproducible_from_its_seed():
    pool = _numbered_pool([True, True, False, True])
    assert _drawn(iter(pool.stream(seed=7)), 20) == _drawn(iter(pool.stream(seed=7)), 20)
    assert set(_drawn(iter(pool.stream(seed=7)), 60)) == {0, 1, 3}


def test_no_tumor_free_slice_gives_no_pool(tiny_dataset, tmp_path):
    everything = tf.io.gfile.glob(write_examples(tiny_dataset, str(tmp_path / "all")))
    path = str(tmp_path / "tumor.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for serialized in tf.data.TFRecordDataset(everything, compression_type="GZIP"):
            _, mask = input_pipeline.parse_examples(serialized[tf.newaxis])
            if np.any(mask.numpy() > 0):
                writer.write(serialized.numpy())
    assert hard_negatives.load_pool([path], testing_config(image_size=256)) is None  # native size: tumor stays tumor
