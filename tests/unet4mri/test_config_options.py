"""The command line is generated from the config fields: one field, one option."""

import argparse
import dataclasses
import os

import pytest

from core.config_fields import option
from models.config import WARM_START_SERVED, TrainingConfig
from pipeline.config import IngestionConfig, PipelineConfig
from unet4mri import cli
from unet4mri.config_options import add_options, config_from_args


def _parse(argv: list[str]) -> PipelineConfig:
    parser = argparse.ArgumentParser()
    add_options(parser, PipelineConfig)
    return config_from_args(PipelineConfig, parser.parse_args(argv), data_dir="d", output_dir="o")


def test_no_options_give_the_default_configs():
    assert _parse([]) == PipelineConfig(data_dir="d", output_dir="o")


def test_every_documented_field_is_an_option_of_run():
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for config_class in (PipelineConfig, IngestionConfig, TrainingConfig):
        for field in dataclasses.fields(config_class):
            if field.metadata.get("help"):
                flag = field.name.replace("_", "-")
                assert f"--{flag}" in help_text or f"--no-{flag}" in help_text, field.name


def test_conventions_for_off_booleans_tuples_aliases_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _parse(
        "--max-drift off --no-small-tumor-guard --split-hash-buckets 10 5 5 --dropout 0.1 --patience 3 "
        "--no-augment --deep-supervision --model unetpp --mixed-precision bfloat16 --warm-start models/v1 --patch-size 64".split()
    )
    assert config.max_drift is None and config.small_tumor_guard is False
    assert config.ingestion.split_hash_buckets == (10, 5, 5)
    training = config.training
    assert (training.dropout_rate, training.early_stopping_patience, training.augment) == (0.1, 3, False)
    assert (training.deep_supervision, training.mixed_precision, training.patch_size) == (True, "bfloat16", 64)
    assert training.warm_start == os.path.join(str(tmp_path), "models", "v1")
    assert _parse(["--warm-start", WARM_START_SERVED]).training.warm_start == WARM_START_SERVED
    assert _parse(["--warm-start", "gs://bucket/model"]).training.warm_start == "gs://bucket/model"


def test_the_empty_slice_blessing_gates_turn_off():
    config = _parse(
        "--max-empty-slice-fp-rate off --max-fp-rate-regression off --min-patient-dice 0.8 --selection-metric dice_pooled".split()
    )
    assert (config.max_empty_slice_fp_rate, config.max_fp_rate_regression, config.min_patient_dice) == (None, None, 0.8)
    assert _parse([]).training.selection_metric == "dice_pooled"


@pytest.mark.parametrize(
    "argv", [["--mixed-precision", "fp8"], ["--n-filters", "12"], ["--split-hash-buckets", "1", "2"], ["--selection-metric", "val_dice"]]
)
def test_values_outside_the_choices_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert "error:" in capsys.readouterr().err


def test_a_new_field_is_a_new_option():
    @dataclasses.dataclass(frozen=True)
    class Section:
        strength: float = option(0.5, "how strong")

    @dataclasses.dataclass(frozen=True)
    class Config:
        section: Section = Section()
        limit: int | None = option(3, "a limit")
        internal: int = 7  # no help: not an option

    parser = argparse.ArgumentParser()
    add_options(parser, Config)
    parsed = config_from_args(Config, parser.parse_args(["--strength", "0.25", "--limit", "off"]))
    assert parsed == Config(section=Section(strength=0.25), limit=None)
    with pytest.raises(SystemExit):
        parser.parse_args(["--internal", "1"])
