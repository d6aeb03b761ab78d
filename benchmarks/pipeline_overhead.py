"""Pipeline overhead: a whole local run minus the time inside the components, and a rerun from the cache.

Runs the pipeline with LocalDagRunner on a small generated dataset and a
seconds-long training, then again with the same inputs. Overhead = wall time
of `run_local` minus the sum of the components' execution times recorded in
ML Metadata (orchestration, caching lookups, MLMD writes, launching).
"""

import os
import tempfile

from benchmarks.common import Timer


def run(work_dir: str, patients: int, slices_per_patient: int) -> list[dict]:
    from core import synthetic_data
    from models.config import testing_config
    from pipeline.config import PipelineConfig
    from pipeline.local_runner import run_local

    data = os.path.join(work_dir, f"pipeline_{patients}x{slices_per_patient}")
    if not os.path.isdir(data):
        synthetic_data.generate_dataset(data, patients, slices_per_patient, seed=0)
    training = testing_config()  # a seconds-long training: the benchmark is about the orchestration
    no_floors = dict(min_tumor_slice_dice=0.0, min_patient_dice=0.0, max_empty_slice_fp_rate=None)  # the tiny model is pushed
    config = PipelineConfig(data_dir=data, output_dir=tempfile.mkdtemp(dir=work_dir), training=training, **no_floors)
    results = []
    for name in ("first run", "rerun, same inputs"):
        with Timer() as timer:
            summary = run_local(config)
        inside = sum(run.seconds for run in summary.components)
        executed = sorted(run.component for run in summary.components if run.state == "complete")
        results.append(
            {
                "benchmark": "pipeline",
                "variant": name,
                "slices": patients * slices_per_patient,
                "wall_seconds": timer.seconds,
                "component_seconds": inside,
                "overhead_seconds": timer.seconds - inside,
                "executed": executed,
            }
        )
        print(results[-1], flush=True)
    return results
