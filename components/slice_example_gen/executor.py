"""ExampleGen executor: a Beam PTransform from a data folder to tf.Examples, one per slice.

Two layouts, detected per root (`core.volumes.has_volumes`): TIFF slices in the
kaggle_3m layout (`core.slices`), or BraTS-style case folders of NIfTI volumes
or DICOM series (`core.volumes`), which are reoriented, resampled to the
256 x 256 grid and normalized (`core.volume_grid`); axial slices with no head
voxel (all channels 0) are skipped. Examples carry `pixel_spacing_mm` and
`slice_spacing_mm` (0 for TIFF: unknown). A volume case that cannot be used
(unreadable file, 4D, contrasts of different shapes or affines, NaN voxels, a
label that is not integer, a missing contrast) is rejected whole, its case
folder and reason in `rejected.csv`.

Files that cannot be used (corrupt TIFF, wrong shape, non-binary mask, an
image without its mask or a mask without its image, ...) are rejected, not
dropped silently: each is written with its reason to `rejected.csv` in the
examples artifact, and the run fails with a one-line
error naming the first one when the rejected fraction exceeds
`max_rejected_fraction` (default 0: any bad file stops the run).

Memory stays flat as the data grows: each slice is read, converted, assigned
to its split (`assign_splits`: TFX's hash of the case id, with at least
MIN_PATIENTS_PER_SPLIT patients in every split when the data has enough) and
written in one fused Beam stage, so examples stream from the TIFFs to the TFRecord files. TFX's own
writer shuffles every split first (a Reshuffle, which the local DirectRunner
materializes: all examples in memory); here only the list of slice paths is
shuffled, before reading, which spreads the work over Beam workers just the
same. Split files keep TFX's names and format (`Split-<name>/data_tfrecord-*.gz`).

Options travel in ExampleGen's `custom_config` as a `google.protobuf.Struct`
(see `make_custom_config`): max_rejected_fraction, small_max_pixels,
medium_max_pixels, context_slices (see data_schema.features `context`), the
volume layout's fields (`core.volumes.VolumeLayout`), and code_version (see
pipeline.pipeline.code_fingerprint).
"""

import csv
import dataclasses
import hashlib
import itertools
import os
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor, _PartitionFn
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from core import slices, volume_grid, volumes
from core.contracts import MIN_PATIENTS_PER_SPLIT, REJECTED_FILE
from data_schema import features

# Case folder / file: what ExampleGen's driver fingerprints for caching (TIFF slices, NIfTI files and DICOM series folders alike).
SLICE_FILES_PATTERN = "*/*"
_REJECTED_PATH = "_rejected_path"
_REJECTED_TAG = "rejected"
DEFAULT_OPTIONS = {
    "max_rejected_fraction": 0.0,
    "small_max_pixels": features.DEFAULT_SMALL_MAX_PIXELS,
    "medium_max_pixels": features.DEFAULT_MEDIUM_MAX_PIXELS,
    "context_slices": 0,
    **dataclasses.asdict(volumes.VolumeLayout()),
    "code_version": "",  # a hash of the ingestion code: part of the cache key, unused by the executor
}


class IngestionError(ValueError):
    """Too many slices were rejected; the message names the first one."""


def make_custom_config(**options: Any) -> example_gen_pb2.CustomConfig:
    """ExampleGen custom_config carrying our ingestion options."""
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown ingestion options: {sorted(unknown)}")
    struct = struct_pb2.Struct()
    struct.update({**DEFAULT_OPTIONS, **options})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def split_by_patient(split_names: tuple[str, ...], split_hash_buckets: tuple[int, ...]) -> example_gen_pb2.Output:
    """ExampleGen's output config: splits `split_names` in proportions `split_hash_buckets`,
    partitioned by the hash of the case id, so that no patient is in two splits."""
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=b) for name, b in zip(split_names, split_hash_buckets)],
            partition_feature_name=features.CASE_ID,
        )
    )


def executor_properties(input_base: str, split_hash_buckets: tuple[int, ...], split_names: tuple[str, ...], **options: Any) -> dict:
    """ExampleGen's exec properties for running this executor directly (tests, benchmarks):
    all slices of `input_base`, split by patient into `split_names` by `split_hash_buckets`."""
    output_config = split_by_patient(split_names, split_hash_buckets)
    return {
        standard_component_specs.INPUT_BASE_KEY: input_base,
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=SLICE_FILES_PATTERN)])
        ),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        standard_component_specs.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(make_custom_config(**options)),
    }


def _options(exec_properties: dict[str, Any]) -> dict[str, Any]:
    serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    options = dict(DEFAULT_OPTIONS)
    if serialized:
        config = example_gen_pb2.CustomConfig()
        proto_utils.json_to_proto(serialized, config)
        struct = struct_pb2.Struct()
        if config.custom_config.Unpack(struct):
            options.update(json_format.MessageToDict(struct))
    return options


def slice_to_example(
    pair: slices.SlicePair, small_max_pixels: int, medium_max_pixels: int, context_paths: list[str] = ()
) -> tf.train.Example:
    """One slice pair as a tf.train.Example (features in data_schema.features);
    `context_paths`: the neighbour images stored in the `context` feature."""
    image, mask = slices.read_pair(pair)
    context = slices.read_stack(image, list(context_paths))[..., image.shape[2] :] if context_paths else None
    return make_example(image, mask, pair.case_id, pair.slice_index, small_max_pixels, medium_max_pixels, context)


def volume_to_examples(case: volumes.VolumeCase, options: dict[str, Any]) -> list[tf.train.Example]:
    """The axial slices of one volume case with head voxels, as tf.train.Examples on the 256 x 256 grid
    (VolumeError naming the file when the case cannot be used)."""
    layout = volumes.VolumeLayout(**{field.name: options[field.name] for field in dataclasses.fields(volumes.VolumeLayout)})
    loaded = volumes.load_case(case, layout)
    images, grid = volume_grid.grid_slices(loaded.images, loaded.spacing_mm)
    masks = volume_grid.grid_masks(loaded.mask, grid)
    context_slices = int(options["context_slices"])
    offsets = [*range(-context_slices, 0), *range(1, context_slices + 1)]
    last = len(images) - 1
    examples = []
    for k, (image, mask) in enumerate(zip(images, masks)):
        if not image.any():
            continue
        context = np.concatenate([images[min(max(k + o, 0), last)] for o in offsets], axis=2) if offsets else None
        examples.append(
            make_example(
                image, mask, case.case_id, k + 1, options["small_max_pixels"], options["medium_max_pixels"], context,
                pixel_spacing_mm=grid.pixel_mm, slice_spacing_mm=loaded.spacing_mm[2],
            )
        )  # fmt: skip
    return examples


def make_example(
    image: np.ndarray,
    mask: np.ndarray,
    case_id: str,
    slice_index: int,
    small_max_pixels: int,
    medium_max_pixels: int,
    context: np.ndarray | None = None,
    pixel_spacing_mm: float = features.UNKNOWN_SPACING,
    slice_spacing_mm: float = features.UNKNOWN_SPACING,
) -> tf.train.Example:
    """image uint8 [H, W, 3], mask uint8 [H, W] 0/1, context uint8 [H, W, 6K] or None -> a tf.train.Example."""
    tumor_pixels = int(mask.sum())
    bucket = features.tumor_size_bucket(tumor_pixels, int(small_max_pixels), int(medium_max_pixels))

    def int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    def float32(value: float):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))

    head = image.any(axis=2)
    means = image[head].mean(axis=0) if head.any() else np.zeros(features.CHANNELS)

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE: _bytes_feature(np.ascontiguousarray(image).tobytes()),
                features.MASK: _bytes_feature(np.ascontiguousarray(mask).tobytes()),
                features.CASE_ID: _bytes_feature(case_id.encode()),
                features.SLICE_INDEX: int64(int(slice_index)),
                features.TUMOR_PIXELS: int64(tumor_pixels),
                features.TUMOR_SIZE_BUCKET: _bytes_feature(bucket.encode()),
                features.HEIGHT: int64(image.shape[0]),
                features.WIDTH: int64(image.shape[1]),
                features.TUMOR_PIXEL_FRACTION: float32(tumor_pixels / mask.size),
                features.PIXEL_SPACING_MM: float32(float(pixel_spacing_mm)),
                features.SLICE_SPACING_MM: float32(float(slice_spacing_mm)),
                **{name: float32(float(mean)) for name, mean in zip(features.MEAN_INTENSITIES, means)},
                **({features.CONTEXT: _bytes_feature(np.ascontiguousarray(context).tobytes())} if context is not None else {}),
            }
        )
    )


class _ReadSlice(beam.DoFn):
    def __init__(self, options: dict[str, Any]):
        self._small = options["small_max_pixels"]
        self._medium = options["medium_max_pixels"]

    def process(self, element: tuple[slices.SlicePair, list[str]]):
        pair, context_paths = element
        try:
            yield slice_to_example(pair, self._small, self._medium, context_paths)
        except slices.SliceError as error:
            yield beam.pvalue.TaggedOutput(_REJECTED_TAG, (pair.image_path, str(error)))


class _ReadVolume(beam.DoFn):
    def __init__(self, options: dict[str, Any]):
        self._options = options

    def process(self, case: volumes.VolumeCase):
        try:
            examples = volume_to_examples(case, self._options)
        except slices.SliceError as error:  # VolumeError too: the whole case is rejected
            yield beam.pvalue.TaggedOutput(_REJECTED_TAG, (case.folder, str(error)))
            return
        yield from examples


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """What a split pattern matched: TIFF slices with their context paths, volume cases, and the files refused while listing."""

    slices: list[tuple[slices.SlicePair, list[str]]]
    cases: list[volumes.VolumeCase]
    problems: list[tuple[str, str]]

    @property
    def case_ids(self) -> set[str]:
        return {pair.case_id for pair, _ in self.slices} | {case.case_id for case in self.cases}


def _list_inputs(exec_properties: dict[str, Any], split_pattern: str) -> _Inputs:
    """Lists the case folders matched by `<input_base>/<split_pattern>`.

    The pattern ends in `*/*` (case folder / file, which is what ExampleGen's
    driver fingerprints for caching); each root before that suffix is read with
    `volumes.find_volume_cases` when it holds volumes, else `slices.list_slices`.
    """
    if not split_pattern.endswith(SLICE_FILES_PATTERN):
        raise ValueError(f"split pattern must end in {SLICE_FILES_PATTERN!r}, got {split_pattern!r}")
    root_pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern[: -len(SLICE_FILES_PATTERN)])
    roots = sorted(tf.io.gfile.glob(root_pattern)) if any(c in root_pattern for c in "*?[") else [root_pattern]
    options = _options(exec_properties)
    layout = volumes.VolumeLayout(**{field.name: options[field.name] for field in dataclasses.fields(volumes.VolumeLayout)})
    volume_roots = [root for root in roots if os.path.isdir(root) and volumes.has_volumes(root, layout)]
    listings = [slices.list_slices(root) for root in roots if root not in volume_roots]
    volume_listings = [volumes.find_volume_cases(root, layout) for root in volume_roots]
    context_slices = int(options["context_slices"])
    return _Inputs(
        slices=[element for listing in listings for element in zip(listing.pairs, slices.context_paths(listing.pairs, context_slices))],
        cases=[case for found, _ in volume_listings for case in found],
        problems=[problem for listing in listings for problem in listing.unpaired]
        + [problem for _, case_problems in volume_listings for problem in case_problems],
    )


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _SlicesToExample(  # noqa: N802
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str, inputs: _Inputs | None = None
) -> beam.pvalue.PCollection:
    """The examples of the inputs `_list_inputs` finds for `split_pattern` (or of `inputs`, when listed already);
    the refused ones are written to `exec_properties[_REJECTED_PATH]`."""
    inputs = inputs or _list_inputs(exec_properties, split_pattern)
    options = _options(exec_properties)
    # Only the readers that have input: a Flatten of two example streams makes Beam's local runner
    # buffer every example before the write (peak memory grew with the data, measured in `make bench`).
    readers = []
    if inputs.slices or not inputs.cases:
        readers.append(pipeline | "ListSlices" >> beam.Create(inputs.slices, reshuffle=True) | "ReadSlices" >> _read(_ReadSlice(options)))
    if inputs.cases:
        readers.append(pipeline | "ListVolumes" >> beam.Create(inputs.cases, reshuffle=True) | "ReadVolumes" >> _read(_ReadVolume(options)))
    unpaired = pipeline | "ListUnpaired" >> beam.Create(inputs.problems)
    _ = (
        (*(reader[_REJECTED_TAG] for reader in readers), unpaired)
        | "AllRejected" >> beam.Flatten()
        | "FormatRejected" >> beam.MapTuple(lambda path, reason: f"{path}\t{reason}")
        | "WriteRejected" >> beam.io.WriteToText(exec_properties[_REJECTED_PATH], shard_name_template="")
    )
    if len(readers) == 1:
        return readers[0].examples
    return tuple(reader.examples for reader in readers) | "AllExamples" >> beam.Flatten()


def assign_splits(case_ids: Iterable[str], split_config: example_gen_pb2.SplitConfig) -> dict[str, int]:
    """The split (index into `split_config.splits`) of each patient.

    First TFX's own partition: the hash of the case id into the splits' hash
    buckets, so a patient keeps its split when others are added. A small
    dataset strays from the buckets' shares (16 patients at 14 : 3 : 3 leave
    eval with at most one patient in 28 % of datasets), and then one patient
    chooses the epoch or decides the blessing. So when there are patients
    enough to give every split MIN_PATIENTS_PER_SPLIT, a split below it takes
    patients from the largest split, one at a time, in the order of a hash of
    their id; with fewer patients TFX's partition stays as it is.
    """
    buckets = list(itertools.accumulate(split.hash_buckets for split in split_config.splits))
    split_of = {}
    for case_id in sorted(set(case_ids)):
        key = tf.train.Example(features=tf.train.Features(feature={features.CASE_ID: _bytes_feature(case_id.encode())}))
        split_of[case_id] = _PartitionFn(key, len(buckets), buckets, split_config)
    if len(split_of) < MIN_PATIENTS_PER_SPLIT * len(buckets):
        return split_of
    members = [sorted((case for case, split in split_of.items() if split == index), key=_move_order) for index in range(len(buckets))]
    while min(map(len, members)) < MIN_PATIENTS_PER_SPLIT:
        short = min(range(len(members)), key=lambda index: len(members[index]))
        donor = max(range(len(members)), key=lambda index: len(members[index]))
        moved = members[donor].pop(0)
        members[short].append(moved)
        split_of[moved] = short
    return split_of


def _move_order(case_id: str) -> str:
    return hashlib.sha256(case_id.encode()).hexdigest()


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _read(reader: beam.DoFn) -> beam.PTransform:
    """The ParDo of a reader DoFn, with the refused inputs as a second output."""
    return beam.ParDo(reader).with_outputs(_REJECTED_TAG, main="examples")


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for kaggle_3m-layout slice folders and BraTS-style volume case folders."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        return _SlicesToExample

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]) -> dict[str, beam.pvalue.PCollection]:  # noqa: N802
        """The examples of each output split: TFX's, with the patients split by `assign_splits`."""
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        split_config = output_config.split_config
        if len(input_config.splits) != 1 or not split_config.splits or split_config.partition_feature_name != features.CASE_ID:
            raise ValueError(f"ingestion reads one input pattern into splits partitioned by {features.CASE_ID} (see split_by_patient)")
        inputs = _list_inputs(exec_properties, input_config.splits[0].pattern)
        split_of = assign_splits(inputs.case_ids, split_config)
        parts = (
            pipeline
            | "InputToRecord" >> _SlicesToExample(exec_properties, input_config.splits[0].pattern, inputs)
            | "SplitData" >> beam.Partition(_split_of_example, len(split_config.splits), split_of)
        )
        return dict(zip(example_gen_utils.generate_output_split_names(input_config, output_config), parts))

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802
        """Ingest the slices into split examples, and list the slices refused.

        BaseExampleGenExecutor.Do with a streaming write: each split is written as
        it is produced, without TFX's Reshuffle of the examples (see the module docstring).

        Args:
          input_dict: none (FileBasedExampleGen reads `input_base`).
          output_dict:
            - examples: one `Examples` artifact; `Split-<name>/` GZIP TFRecords of
              tf.Examples (data_schema.features), and REJECTED_FILE, a CSV of the
              refused slice files and why (written even when empty).
          exec_properties:
            - input_base: the data root; input_config: its split patterns
              (ending in SLICE_FILES_PATTERN);
            - output_config: split names and hash buckets, partitioned by case id
              (`assign_splits`);
            - custom_config: the ingestion options of `make_custom_config`
              (max_rejected_fraction, bucket thresholds, context_slices, code_version).

        Raises:
          IngestionError: more than max_rejected_fraction of the slices were refused.
        """
        examples_artifacts = output_dict[standard_component_specs.EXAMPLES_KEY]
        examples_dir = artifact_utils.get_single_uri(examples_artifacts)
        rejected_lines = os.path.join(examples_dir, "rejected.tsv")
        exec_properties = {**exec_properties, _REJECTED_PATH: rejected_lines}
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        artifact = artifact_utils.get_single_instance(examples_artifacts)
        artifact.split_names = artifact_utils.encode_split_names(example_gen_utils.generate_output_split_names(input_config, output_config))
        with self._make_beam_pipeline() as pipeline:
            for split_name, split in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                split_dir = artifact_utils.get_split_uri(examples_artifacts, split_name)
                _ = split | f"WriteSplit[{split_name}]" >> _WriteSplitStreaming(split_dir)
        examples_utils.set_payload_format(
            artifact, exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY, example_gen_pb2.FORMAT_TF_EXAMPLE)
        )
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))
        _report_rejected(examples_dir, rejected_lines, _options(exec_properties))


def _split_of_example(example: tf.train.Example, _: int, split_of: dict[str, int]) -> int:
    return split_of[example.features.feature[features.CASE_ID].bytes_list.value[0].decode()]


@beam.ptransform_fn
def _WriteSplitStreaming(examples: beam.pvalue.PCollection, split_dir: str) -> beam.pvalue.PDone:  # noqa: N802
    """tf.Examples -> GZIP TFRecord files `<split_dir>/data_tfrecord-*.gz`, in the order they come."""
    return (
        examples
        | "Serialize" >> beam.Map(lambda example: example.SerializeToString())
        | "Write" >> beam.io.WriteToTFRecord(os.path.join(split_dir, write_split.DEFAULT_FILE_NAME), file_name_suffix=".gz")
    )


def _report_rejected(examples_dir: str, rejected_lines: str, options: dict[str, Any]) -> None:
    rejected = []
    if tf.io.gfile.exists(rejected_lines):
        with tf.io.gfile.GFile(rejected_lines) as lines:
            rejected = sorted(line.rstrip("\n").split("\t", 1) for line in lines if line.strip())
        tf.io.gfile.remove(rejected_lines)
    with tf.io.gfile.GFile(os.path.join(examples_dir, REJECTED_FILE), "w") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "reason"])
        writer.writerows(rejected)
    if not rejected:
        return
    accepted = _count_examples(examples_dir)
    fraction = len(rejected) / (len(rejected) + accepted)
    if fraction > options["max_rejected_fraction"]:
        raise IngestionError(
            f"{rejected[0][1]} ({len(rejected)} of {len(rejected) + accepted} slices rejected, "
            f"more than max_rejected_fraction={options['max_rejected_fraction']}; list in "
            f"{os.path.join(examples_dir, REJECTED_FILE)})"
        )


def _count_examples(examples_dir: str) -> int:
    files = tf.io.gfile.glob(os.path.join(examples_dir, "Split-*", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
