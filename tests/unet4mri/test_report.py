"""The run report: its pieces on fixed inputs, and the whole page of a tiny run (e2e)."""

import html
from html.parser import HTMLParser

import numpy as np
import pytest
import tensorflow as tf

from pipeline import run_summary
from tests.conftest import write_pair
from tests.helpers import export_red_channel_model
from unet4mri import report

SIZE = 32


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.text = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_data(self, data):
        self.text.append(data)


def _examples_with_context(data_dir: str, examples_uri: str, context_slices: int) -> None:
    """The slices of `data_dir` as ingestion writes them (with their context slices) into `<examples_uri>/Split-test/`."""
    from components.slice_example_gen.executor import slice_to_example
    from core import slices

    pairs = slices.find_slice_pairs(data_dir)
    context = slices.context_paths(pairs, context_slices)
    split = tf.io.gfile.join(examples_uri, "Split-test")
    tf.io.gfile.makedirs(split)
    with tf.io.TFRecordWriter(tf.io.gfile.join(split, "data.gz"), options="GZIP") as writer:
        for pair, neighbours in zip(pairs, context):
            writer.write(slice_to_example(pair, 300, 1500, neighbours).SerializeToString())


def _slice(truth_rows, truth_columns, predicted_rows, predicted_columns):
    """(image, mask) SIZE x SIZE: truth 255 in the truth box; the first channel 255 in the predicted box."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[truth_rows, truth_columns] = 255
    image[predicted_rows, predicted_columns, 0] = 255
    return image, mask


def test_gallery_of_a_context_slice_model_picks_slices_by_dice(tmp_path):
    """The model parses its own context slices from the examples (a 3-channel picture would be refused:
    the model takes 3 (2K + 1) = 9 channels)."""
    data = tmp_path / "data"
    write_pair(data, "P1", 1, *_slice(slice(0, 4), slice(0, 4), slice(0, 4), slice(0, 8)))  # Dice 2*16/(16+32)
    write_pair(data, "P1", 2, *_slice(slice(8, 16), slice(8, 16), slice(8, 16), slice(8, 16)))  # Dice 1
    write_pair(data, "P1", 3, *_slice(slice(0, 0), slice(0, 0), slice(10, 12), slice(10, 12)))  # empty: 4 false positives
    write_pair(data, "P1", 4, *_slice(slice(0, 0), slice(0, 0), slice(0, 0), slice(0, 0)))  # empty, none predicted
    _examples_with_context(str(data), str(tmp_path / "examples"), context_slices=1)
    model = str(tmp_path / "model")
    export_red_channel_model(model, image_size=SIZE, context_slices=1)

    items = report.gallery(model, str(tmp_path / "examples"))
    assert [item.title for item in items] == [
        "small · worst · P1 #1 · Dice 0.67",
        "small · median · P1 #2 · Dice 1.00",
        "small · best · P1 #2 · Dice 1.00",
        "empty slice · false positive · P1 #3 · 4 px",
    ]
    assert all(item.image.shape == (SIZE, SIZE, 3) and item.image.dtype == np.uint8 for item in items)


def _write_eval_config(folder, eval_config) -> str:
    """eval_config.json as TFMA's Evaluator writes it (an EvalRun in JSON)."""
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2

    folder.mkdir()
    (folder / "eval_config.json").write_text(json_format.MessageToJson(config_pb2.EvalRun(eval_config=eval_config, version="0.47.0")))
    return str(folder)


@pytest.mark.parametrize("small_tumor_guard", [True, False])
def test_blessing_thresholds_in_words(tmp_path, small_tumor_guard):
    import tensorflow_model_analysis as tfma

    from pipeline import pipeline
    from pipeline.config import testing_pipeline_config

    config = testing_pipeline_config(
        "data",
        "out",
        min_tumor_slice_dice=0.6,
        min_patient_dice=0.7,
        max_empty_slice_fp_rate=0.15,
        max_dice_regression=0.02,
        max_fp_rate_regression=0.01,
        small_tumor_guard=small_tumor_guard,
    )
    written = pipeline.eval_config(config)
    # What the Evaluator keeps: change thresholds only when a model is served (a baseline exists).
    first = tfma.utils.update_eval_config_with_defaults(written, has_baseline=False, rubber_stamp=True)
    later = tfma.utils.update_eval_config_with_defaults(written, has_baseline=True, rubber_stamp=True)
    floors = ["dice_per_tumor_slice_mean ≥ 0.6 (overall)", "dice_per_patient_mean ≥ 0.7 (overall)", "empty_slice_fp_rate ≤ 0.15 (overall)"]
    assert sorted(report.blessing_thresholds(_write_eval_config(tmp_path / "first", first))) == sorted(
        [*floors, "no comparison: no model was served yet"]
    )
    where = "overall and tumor_size_bucket=small" if small_tumor_guard else "overall"
    assert sorted(report.blessing_thresholds(_write_eval_config(tmp_path / "later", later))) == sorted(
        [
            *floors,
            f"dice_per_tumor_slice_mean at most 0.02 below the served model ({where})",
            "dice_per_patient_mean at most 0.02 below the served model (overall)",
            "empty_slice_fp_rate at most 0.01 above the served model (overall)",
        ]
    )


@pytest.mark.e2e
def test_report_of_a_tiny_context_slice_run(tiny_dataset, tmp_path):
    """A first run (nothing served) with context slices: every section, the gallery, and its exact decision."""
    from models.config import testing_config
    from pipeline.config import testing_pipeline_config
    from pipeline.local_runner import run_local

    config = testing_pipeline_config(tiny_dataset, str(tmp_path / "run"), training=testing_config(context_slices=1))
    summary = run_local(config)
    assert summary.blessed is True  # the testing floor is 0 and no model was served
    path = report.build_report(config.output_dir, str(tmp_path / "report.html"))
    with open(path) as page:
        page_html = page.read()
    parser = _Collector()
    parser.feed(page_html)
    assert set(report.SECTIONS) <= parser.ids
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert page_html.count("<figure>") >= 1  # the gallery: the model parsed its own context slices
    text = " ".join(parser.text)
    for expected in ("FileBasedExampleGen", "Positive-pixel weight", "dice_per_patient_mean", "Anomalies", "context_slices=1"):
        assert expected in text
    warnings = run_summary.few_patients_warnings(summary.patients_by_split)
    assert warnings  # 6 patients: eval or test holds fewer than 3
    assert all(f"<p class='bad'>{html.escape(warning)}</p>" in page_html for warning in warnings)
    ratio = summary.positive_pixel_weight
    assert f"the loss weighs a tumor pixel {ratio:.1f} ** 0.5 = <b>{ratio**0.5:.1f}</b>" in page_html  # the default exponent
    decision = page_html[page_html.index("Decision: ") :].split("</p>")[0]
    assert decision.startswith("Decision: <span class='ok'>blessed</span>. Gates: ")
    for gate in (
        "dice_per_tumor_slice_mean ≥ 0.0 (overall)",
        "dice_per_patient_mean ≥ 0.0 (overall)",
        "no comparison: no model was served yet",
    ):
        assert gate in decision


@pytest.mark.parametrize(
    "config, says",
    [
        (
            {"selection_metric": "dice_pooled", "selection_smoothing": 0.7},
            "dice_pooled, moving average with weight 0.7 on the previous epochs",
        ),
        ({"selection_metric": "dice_pooled", "selection_smoothing": 0.0}, "validation dice_pooled on the eval patients"),
        ({}, "validation dice_per_tumor_slice_mean on the eval patients"),  # a run from before the options
    ],
)
def test_training_section_says_what_chose_the_best_epoch(config, says):
    history = {"config": config, "best_epoch": 3, "history": {"loss": [1.0, 0.8, 0.7], "val_dice": [0.2, 0.4, 0.5]}}
    text = html.unescape("".join(report._section_training(history)))
    assert says in text and "Best epoch" in text and ": 3;" in text


def test_the_curves_show_what_chose_the_best_epoch():
    history = {"loss": [1.0, 0.8], "val_dice_pooled": [0.2, 0.6], "val_dice_pooled_smoothed": [0.2, 0.32]}
    smoothed = report.selection_series({"monitor": "val_dice_pooled_smoothed", "history": history})
    assert smoothed == {
        "val_dice_pooled (each epoch)": [0.2, 0.6],
        "val_dice_pooled_smoothed (chose the best epoch)": [0.2, 0.32],
    }
    plain = report.selection_series({"monitor": "val_dice_pooled", "history": history})
    assert plain == {"val_dice_pooled (chose the best epoch)": [0.2, 0.6]}
    assert report.selection_series({"history": history}) == {}  # written before the monitor was recorded
    section = "".join(report._section_training({"monitor": "val_dice_pooled_smoothed", "best_epoch": 2, "history": history}))
    assert "<img alt='training curves' src='data:image/png;base64," in section
