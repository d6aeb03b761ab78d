"""The benchmarks run against today's code (a renamed config field once broke `make bench` unnoticed)."""

import importlib
import pathlib

import pytest

from core import synthetic_data

BENCHMARKS = sorted(path.stem for path in (pathlib.Path(__file__).parents[1] / "benchmarks").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_module_imports(name):
    importlib.import_module(f"benchmarks.{name}")


def test_the_ingestion_benchmark_runs_the_executor_on_tiny_data(tmp_path):
    from benchmarks.ingestion import naive_ingestion, pipeline_ingestion
    from pipeline.config import PipelineConfig

    synthetic_data.generate_dataset(str(tmp_path / "data"), 3, 3, seed=0, image_size=32)
    pipeline = pipeline_ingestion(str(tmp_path / "data"), str(tmp_path / "pipeline"), list(PipelineConfig.beam_pipeline_args))
    naive = naive_ingestion(str(tmp_path / "data"), str(tmp_path / "naive"))
    assert pipeline["seconds"] > 0 and naive["seconds"] > 0
    assert sorted(path.name for path in (tmp_path / "pipeline").iterdir() if path.is_dir()) == ["Split-eval", "Split-test", "Split-train"]
