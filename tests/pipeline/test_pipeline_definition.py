"""The pipeline's definition, without running it."""

import json

from pipeline import pipeline
from pipeline.config import testing_pipeline_config


def _node(built, node_id):
    return next(component for component in built.components if component.id == node_id)


def test_code_fingerprints_are_in_the_cache_keys_of_ingestion_and_training(tmp_path):
    """Edited ingestion or model code must not be served from the cache of an older run."""
    built = pipeline.create_pipeline(testing_pipeline_config(str(tmp_path), str(tmp_path / "out")))
    example_gen = _node(built, "FileBasedExampleGen").exec_properties["custom_config"]
    assert pipeline.code_fingerprint(*pipeline.INGESTION_CODE) in json.dumps(str(example_gen))
    trainer = _node(built, "Trainer").exec_properties["custom_config"]
    assert pipeline.code_fingerprint(*pipeline.MODEL_CODE) in str(trainer)
    assert {"core", "data_schema"} <= set(pipeline.MODEL_CODE) & set(pipeline.INGESTION_CODE)


def test_fingerprints_follow_every_file_of_the_hashed_packages(tmp_path, monkeypatch):
    package = tmp_path / "fingerprinted"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = pipeline.code_fingerprint("fingerprinted")
    assert pipeline.code_fingerprint("fingerprinted") == before
    (package / "inner" / "b.py").write_text("y = 2\n")  # a new file in a sub-folder
    with_new_file = pipeline.code_fingerprint("fingerprinted")
    (package / "a.py").write_text("x = 3\n")  # an edited file
    assert len({before, with_new_file, pipeline.code_fingerprint("fingerprinted")}) == 3


def test_the_drift_check_resolves_before_this_runs_statistics(tmp_path):
    built = pipeline.create_pipeline(testing_pipeline_config(str(tmp_path), str(tmp_path / "out"), max_drift=0.05))
    statistics_gen = _node(built, "StatisticsGen")
    assert "previous_statistics" in {node.id for node in statistics_gen.upstream_nodes}
    kfp = pipeline.create_pipeline(
        testing_pipeline_config(str(tmp_path), str(tmp_path / "out"), max_drift=0.05), pipeline.Capabilities(resolvers=False)
    )
    assert "previous_statistics" not in {component.id for component in kfp.components}


def test_code_comes_from_the_package_and_nothing_is_unpickled(tmp_path):
    import pathlib
    import re

    built = pipeline.create_pipeline(testing_pipeline_config(str(tmp_path / "data"), str(tmp_path / "out")))
    assert _node(built, "Trainer").exec_properties["run_fn"] == "models.trainer_module.run_fn"
    root = pathlib.Path(pipeline.__file__).parents[1]
    sources = [
        path
        for package in ("components", "core", "data_schema", "models", "pipeline", "unet4mri")
        for path in (root / package).rglob("*.py")
    ]
    unpickling = re.compile(r"\bimport (c?pickle|dill|joblib)\b|allow_pickle\s*=\s*True|yaml\.load\(|\beval\(|\bexec\(")
    assert sources and [str(path) for path in sources if unpickling.search(path.read_text(encoding="utf-8"))] == []


def test_the_schema_is_imported_by_content_so_an_edited_schema_is_not_served_from_the_cache(tmp_path):
    from data_schema import features

    built = pipeline.create_pipeline(testing_pipeline_config(str(tmp_path), str(tmp_path / "out")))
    with open(features.schema_path()) as schema_file:
        assert _node(built, "ImportSchemaGen").exec_properties["schema_text"] == schema_file.read()


def test_warm_start_from_the_served_model_is_one_option_that_adds_the_served_model_node(tmp_path):
    from models.config import WARM_START_SERVED, testing_config

    def trainer_inputs(config):
        built = pipeline.create_pipeline(config)
        return _node(built, "Trainer").inputs, {component.id for component in built.components}

    inputs, ids = trainer_inputs(testing_pipeline_config(str(tmp_path), str(tmp_path / "out")))
    assert "base_model" not in inputs and "latest_blessed_model_for_warm_start" not in ids
    served = testing_pipeline_config(str(tmp_path), str(tmp_path / "out"), training=testing_config(warm_start=WARM_START_SERVED))
    inputs, ids = trainer_inputs(served)
    assert "base_model" in inputs and "latest_blessed_model_for_warm_start" in ids


def test_example_gen_splits_by_patient_in_the_configured_proportions(tmp_path):
    """Slices of one patient must never land in two splits (test Dice would leak from training)."""
    from tfx import v1 as tfx
    from tfx.utils import proto_utils

    from pipeline.config import IngestionConfig

    config = testing_pipeline_config(str(tmp_path), str(tmp_path / "out"), ingestion=IngestionConfig(split_hash_buckets=(7, 2, 5)))
    built = pipeline.create_pipeline(config)
    output_config = proto_utils.json_to_proto(_node(built, "FileBasedExampleGen").exec_properties["output_config"], tfx.proto.Output())
    split_config = output_config.split_config
    assert split_config.partition_feature_name == "case_id"
    assert [(split.name, split.hash_buckets) for split in split_config.splits] == [("train", 7), ("eval", 2), ("test", 5)]
