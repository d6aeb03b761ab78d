import csv
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts, standard_component_specs

from components.slice_example_gen import executor
from core import contracts, slices, synthetic_data
from data_schema import features
from pipeline.config import SPLITS


def run_executor(input_base: str, out_dir: str, **options) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = out_dir
    exec_properties = executor.executor_properties(input_base, (14, 3, 3), SPLITS, **options)
    executor.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def read_split(out_dir: str, split: str) -> list[tf.train.Example]:
    files = tf.io.gfile.glob(os.path.join(out_dir, f"Split-{split}", "*"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def value(example: tf.train.Example, name: str):
    feature = example.features.feature[name]
    return feature.bytes_list.value[0] if feature.HasField("bytes_list") else feature.int64_list.value[0]


def test_examples_hold_the_slices_and_patients_never_share_splits(tiny_dataset, tmp_path):
    run_executor(tiny_dataset, str(tmp_path))
    patients_by_split = {}
    examples = {}
    for split in SPLITS:
        split_examples = read_split(str(tmp_path), split)
        assert split_examples, f"split {split} is empty"
        patients_by_split[split] = {value(e, features.CASE_ID) for e in split_examples}
        for example in split_examples:
            examples[(value(example, features.CASE_ID).decode(), value(example, features.SLICE_INDEX))] = example
    train, evaluation, test = patients_by_split.values()
    assert not (train & evaluation or train & test or evaluation & test)
    pairs = slices.find_slice_pairs(tiny_dataset)
    assert sorted(examples) == sorted((p.case_id, p.slice_index) for p in pairs)
    pair = next(p for p in pairs if slices.read_mask(p.mask_path).any())
    example = examples[(pair.case_id, pair.slice_index)]
    image, mask = slices.read_pair(pair)
    assert value(example, features.IMAGE) == image.tobytes()
    assert value(example, features.MASK) == mask.tobytes()
    assert value(example, features.TUMOR_PIXELS) == int(mask.sum())
    assert value(example, features.TUMOR_SIZE_BUCKET).decode() == features.tumor_size_bucket(int(mask.sum()))
    assert (value(example, features.HEIGHT), value(example, features.WIDTH)) == (256, 256)
    with open(tmp_path / contracts.REJECTED_FILE) as rejected:
        assert list(csv.reader(rejected)) == [["path", "reason"]]


@pytest.fixture
def dataset_with_a_corrupt_slice(tiny_dataset, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset, copy)
    bad = slices.find_slice_pairs(str(copy))[3].image_path
    with open(bad, "r+b") as handle:
        handle.truncate(64)
    return str(copy), bad


def test_a_corrupt_slice_fails_the_run_naming_the_file(dataset_with_a_corrupt_slice, tmp_path):
    data, bad = dataset_with_a_corrupt_slice
    with pytest.raises(executor.IngestionError, match=rf"{os.path.basename(bad)}: not a readable TIFF .*1 of 60 slices rejected"):
        run_executor(data, str(tmp_path / "out"))


def test_rejected_slices_are_recorded_when_tolerated(dataset_with_a_corrupt_slice, tmp_path):
    data, bad = dataset_with_a_corrupt_slice
    run_executor(data, str(tmp_path / "out"), max_rejected_fraction=0.05)
    with open(tmp_path / "out" / contracts.REJECTED_FILE) as rejected:
        rows = list(csv.reader(rejected))
    assert rows[0] == ["path", "reason"] and [row[0] for row in rows[1:]] == [bad]
    assert sum(len(read_split(str(tmp_path / "out"), split)) for split in SPLITS) == 59


def test_custom_bucket_thresholds_are_used(tiny_dataset, tmp_path):
    run_executor(tiny_dataset, str(tmp_path), small_max_pixels=1, medium_max_pixels=2)
    buckets = {value(e, features.TUMOR_SIZE_BUCKET).decode() for s in SPLITS for e in read_split(str(tmp_path), s)}
    assert buckets == {"none", "large"}


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown ingestion options"):
        executor.make_custom_config(max_rejected=0.1)


def test_bucket_function_boundaries():
    assert [features.tumor_size_bucket(n, 10, 20) for n in (0, 1, 10, 11, 20, 21)] == [
        "none",
        "small",
        "small",
        "medium",
        "medium",
        "large",
    ]
    with pytest.raises(ValueError, match="tumor_pixels"):
        features.tumor_size_bucket(-1)
    with pytest.raises(ValueError, match="thresholds"):
        features.tumor_size_bucket(1, 20, 10)
    assert np.all(np.array([features.tumor_size_bucket(0)]) == "none")


def test_context_slices_are_stored_with_each_slice(tiny_dataset, tmp_path):
    run_executor(tiny_dataset, str(tmp_path), context_slices=1)
    pairs = slices.find_slice_pairs(tiny_dataset)
    by_key = {(p.case_id, p.slice_index): p for p in pairs}
    context = slices.context_paths(pairs, 1)
    examples = [e for split in SPLITS for e in read_split(str(tmp_path), split)]
    assert len(examples) == len(pairs)
    for example in examples[:5]:
        pair = by_key[(value(example, features.CASE_ID).decode(), value(example, features.SLICE_INDEX))]
        expected = np.concatenate([slices.read_image(path) for path in context[pairs.index(pair)]], axis=2)
        assert value(example, features.CONTEXT) == expected.tobytes()


def test_each_patient_lands_in_the_split_of_tfx_hash_partition(tiny_dataset, tmp_path):
    """The streaming writer keeps ExampleGen's split: TFX's own partition function of the case id
    (6 patients are too few for 3 in every split, so none is moved)."""
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn

    run_executor(tiny_dataset, str(tmp_path))
    buckets, split_config = [14, 17, 20], executor.split_by_patient(SPLITS, (14, 3, 3)).split_config
    expected = {}
    for pair in slices.find_slice_pairs(tiny_dataset):
        key = tf.train.Example()
        key.features.feature[features.CASE_ID].bytes_list.value.append(pair.case_id.encode())
        expected[(pair.case_id, pair.slice_index)] = SPLITS[_PartitionFn(key, 3, buckets, split_config)]
    written = {
        (value(example, features.CASE_ID).decode(), value(example, features.SLICE_INDEX)): split
        for split in SPLITS
        for example in read_split(str(tmp_path), split)
    }
    assert written == expected
    files = [name for split in SPLITS for name in os.listdir(tmp_path / f"Split-{split}")]
    assert files and all(name.startswith("data_tfrecord-") and name.endswith(".gz") for name in files)


SPLIT_CONFIG = executor.split_by_patient(SPLITS, (14, 3, 3)).split_config


def hash_split(case_id: str) -> int:
    """TFX's partition of one patient (alone, none can be moved)."""
    return executor.assign_splits([case_id], SPLIT_CONFIG)[case_id]


def patients_hashed_into(counts: tuple[int, ...]) -> list[str]:
    """Case ids that TFX's hash puts `counts[i]` into split i."""
    by_split = [[] for _ in counts]
    for case_id in (f"TCGA_XX_{index:04d}" for index in range(1000)):
        split = hash_split(case_id)
        if len(by_split[split]) < counts[split]:
            by_split[split].append(case_id)
    assert [len(ids) for ids in by_split] == list(counts)
    return [case_id for ids in by_split for case_id in ids]


def split_counts(split_of: dict[str, int]) -> list[int]:
    return [list(split_of.values()).count(index) for index in range(len(SPLITS))]


@pytest.mark.parametrize(
    "hashed, expected", [((12, 1, 3), [10, 3, 3]), ((12, 3, 1), [10, 3, 3]), ((9, 0, 0), [3, 3, 3]), ((3, 10, 2), [3, 9, 3])]
)
def test_a_split_below_three_patients_takes_them_from_the_largest_split(hashed, expected):
    patients = patients_hashed_into(hashed)
    split_of = executor.assign_splits(patients, SPLIT_CONFIG)
    assert split_counts(split_of) == expected
    largest = hashed.index(max(hashed))
    assert all(split_of[case_id] == hash_split(case_id) for case_id in patients if hash_split(case_id) != largest)
    assert executor.assign_splits(reversed(patients), SPLIT_CONFIG) == split_of


@pytest.mark.parametrize("hashed", [(25, 8, 7), (3, 3, 3), (6, 1, 1)])
def test_tfx_hash_split_is_kept_when_every_split_has_three_patients_or_there_are_too_few(hashed):
    patients = patients_hashed_into(hashed)
    assert executor.assign_splits(patients, SPLIT_CONFIG) == {case_id: hash_split(case_id) for case_id in patients}


def test_ingestion_writes_each_patient_to_the_assigned_split(tmp_path):
    data = tmp_path / "data"
    patients = synthetic_data.generate_dataset(str(data), 10, 2, seed=0)
    assert min(split_counts({case_id: hash_split(case_id) for case_id in patients})) < 3, "the data no longer tests a move"
    run_executor(str(data), str(tmp_path / "out"))
    written = {
        value(e, features.CASE_ID).decode(): index for index, split in enumerate(SPLITS) for e in read_split(str(tmp_path / "out"), split)
    }
    assert written == executor.assign_splits(patients, SPLIT_CONFIG) and min(split_counts(written)) == 3


def test_volume_cases_become_examples_and_a_bad_case_is_rejected_whole(tmp_path):
    import nibabel as nib

    from core import synthetic_data

    data = tmp_path / "data"
    ids = synthetic_data.generate_volume_dataset(str(data), 3, 4, seed=0, image_size=32)
    bad = data / ids[0] / f"{ids[0]}_t1ce.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 5), np.int16), np.eye(4)), str(bad))  # another shape
    run_executor(str(data), str(tmp_path / "out"), max_rejected_fraction=0.5)
    examples = [example for split in SPLITS for example in read_split(str(tmp_path / "out"), split)]
    assert sorted({value(e, features.CASE_ID).decode() for e in examples}) == ids[1:]
    assert all(e.features.feature[features.PIXEL_SPACING_MM].float_list.value[0] > 0 for e in examples)
    with open(tmp_path / "out" / contracts.REJECTED_FILE) as table:
        (row,) = list(csv.DictReader(table))
    assert row["path"] == str(data / ids[0]) and row["reason"].startswith(f"{bad}: shape [32, 32, 5] differs")
    with pytest.raises(executor.IngestionError, match=f"{ids[0]}_t1ce.nii.gz: shape"):
        run_executor(str(data), str(tmp_path / "out2"))


def test_tiff_examples_carry_unknown_spacing(tiny_dataset, tmp_path):
    pair = slices.find_slice_pairs(tiny_dataset)[0]
    example = executor.slice_to_example(pair, 300, 1500)
    assert example.features.feature[features.PIXEL_SPACING_MM].float_list.value[0] == features.UNKNOWN_SPACING
    assert example.features.feature[features.SLICE_SPACING_MM].float_list.value[0] == features.UNKNOWN_SPACING


def test_examples_stream_from_their_reader_to_the_write_without_a_flatten(tiny_dataset, tmp_path):
    """A Flatten of the slice and volume example streams makes Beam's local runner hold every example
    in memory before the write (`make bench`: 2.0 -> 6.5 GB from 400 to 4,000 slices); with only
    one kind of input the examples come straight from its reader."""
    import apache_beam as beam

    from core import synthetic_data

    volumes_dir = tmp_path / "volumes"
    synthetic_data.generate_volume_dataset(str(volumes_dir), 1, 4, seed=0, image_size=32)
    for input_base, reader in ((tiny_dataset, "ReadSlices"), (str(volumes_dir), "ReadVolumes")):
        exec_properties = {**executor.executor_properties(input_base, (14, 3, 3), SPLITS), executor._REJECTED_PATH: str(tmp_path / "r.tsv")}
        examples = beam.Pipeline() | "Read" >> executor._SlicesToExample(exec_properties, executor.SLICE_FILES_PATTERN)
        assert examples.producer.full_label.startswith(f"Read/{reader}")
