"""Ingestion: the pipeline's Beam ExampleGen against the notebook way, slices/s and peak memory.

- pipeline: our ExampleGen executor (Beam DirectRunner, the pipeline's
  default arguments) from a kaggle_3m-layout folder into GZIP TFRecords split
  by patient, with validation and rejected-file bookkeeping;
- naive: one process reads each TIFF pair with tifffile and writes one
  tf.train.Example after the other into one TFRecord file.
Each runs in a fresh process so that its peak memory is its own.
"""

import os
import tempfile

from benchmarks.common import Timer, in_subprocess, peak_rss_mb


def pipeline_ingestion(data_dir: str, out_dir: str, beam_args: list[str]) -> dict:
    from tfx.types import standard_artifacts, standard_component_specs

    from components.slice_example_gen import executor
    from pipeline.config import SPLITS, IngestionConfig

    examples = standard_artifacts.Examples()
    examples.uri = out_dir
    exec_properties = executor.executor_properties(data_dir, IngestionConfig.split_hash_buckets, SPLITS)
    context = executor.Executor.Context(beam_pipeline_args=beam_args, tmp_dir=tempfile.mkdtemp())
    with Timer() as timer:
        executor.Executor(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return {"seconds": timer.seconds, "peak_rss_mb": peak_rss_mb()}


def naive_ingestion(data_dir: str, out_dir: str) -> dict:
    import tensorflow as tf

    from components.slice_example_gen.executor import slice_to_example
    from core import slices
    from data_schema import features

    os.makedirs(out_dir, exist_ok=True)
    with Timer() as timer:
        pairs = slices.find_slice_pairs(data_dir)
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(os.path.join(out_dir, "all.tfrecord.gz"), options) as writer:
            for pair in pairs:
                example = slice_to_example(pair, features.DEFAULT_SMALL_MAX_PIXELS, features.DEFAULT_MEDIUM_MAX_PIXELS)
                writer.write(example.SerializeToString())
    return {"seconds": timer.seconds, "peak_rss_mb": peak_rss_mb()}


def run(work_dir: str, patients: list[int], slices_per_patient: int) -> list[dict]:
    from core import synthetic_data
    from pipeline.config import PipelineConfig

    results = []
    for count in patients:
        data = os.path.join(work_dir, f"ingestion_{count}x{slices_per_patient}")
        if not os.path.isdir(data):
            synthetic_data.generate_dataset(data, count, slices_per_patient, seed=0)
        total = count * slices_per_patient
        variants = {
            "naive loop (notebook)": ("naive_ingestion", {}),
            "pipeline, Beam in-memory 1 worker (default)": ("pipeline_ingestion", {"beam_args": list(PipelineConfig.beam_pipeline_args)}),
            f"pipeline, Beam multi-processing {os.cpu_count()} workers": (
                "pipeline_ingestion",
                {"beam_args": ["--direct_running_mode=multi_processing", f"--direct_num_workers={os.cpu_count()}"]},
            ),
        }
        for name, (function, extra) in variants.items():
            out = tempfile.mkdtemp(dir=work_dir)
            measured = in_subprocess("benchmarks.ingestion", function, data_dir=data, out_dir=out, **extra)
            results.append(
                {
                    "benchmark": "ingestion",
                    "variant": name,
                    "slices": total,
                    "slices_per_second": total / measured["seconds"],
                    "peak_rss_mb": measured["peak_rss_mb"],
                }
            )
            print(results[-1], flush=True)
    return results
