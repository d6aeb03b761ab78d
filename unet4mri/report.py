"""`unet4mri report`: one self-contained HTML page about a finished run.

Sections: run (components and their times, training options), data (slices
and patients per split, tumor sizes, anomalies, rejected files, the
positive-pixel weight), training (loss and Dice curves), evaluation (metrics
by tumor size, table and chart; for volumes, per-patient Dice, HD95 in mm and
volume error in mL; the blessing and its threshold) and a gallery
of overlays from the test patients: best, median and worst slice per tumor
size, and the worst false positives on empty slices. Pictures are embedded as
base64 PNGs, so the file can be mailed or archived alone.
"""

import base64
import dataclasses
import html
import io
import json
import os

import numpy as np

from components.anomalies_gate import describe_anomalies
from core import contracts, metrics, overlay
from data_schema import features
from models.config import TrainingConfig
from models.input_pipeline import parse_examples
from pipeline import run_summary
from unet4mri.served_model import ServedModel

SECTIONS = ("run", "data", "training", "evaluation", "gallery")


@dataclasses.dataclass(frozen=True)
class GalleryItem:
    title: str
    image: np.ndarray  # uint8 [H, W, 3] overlay


def _png(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _format(value) -> str:
    return "-" if value is None or (isinstance(value, float) and value != value) else f"{value:.3f}"


SMOOTHED_SUFFIX = "_smoothed"  # models.trainer_module.SmoothedMetric's log key: <source>_smoothed


def selection_series(training: dict) -> dict[str, list[float]]:
    """{label: values per epoch} of what chose the best epoch (history.json's `monitor`): the
    moving average and each epoch's own value when the selection was smoothed; {} for a
    history written before the monitor was recorded."""
    monitor, history = training.get("monitor"), training.get("history", {})
    if not monitor or monitor not in history:
        return {}
    source = monitor.removesuffix(SMOOTHED_SUFFIX)
    each_epoch = {f"{source} (each epoch)": history[source]} if source != monitor and source in history else {}
    return {**each_epoch, f"{monitor} (chose the best epoch)": history[monitor]}


def _curves(history: dict[str, list[float]], selection: dict[str, list[float]], best_epoch: int | None) -> str:
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3 if selection else 2, figsize=(15 if selection else 10, 3.5))
    if selection:
        for label, values in selection.items():
            axes[2].plot(range(1, len(values) + 1), values, "-" if "chose" in label else ":", label=label)
        if best_epoch:
            axes[2].axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        axes[2].set_xlabel("epoch")
        axes[2].set_title("selection on the eval patients")
        axes[2].legend(loc="lower right", fontsize="small")
    for axis, metric in zip(axes, ("loss", "dice")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = next((k for k in history if k.startswith(prefix) and k.endswith(metric) and (prefix or not k.startswith("val_"))), None)
            if key:
                axis.plot(range(1, len(history[key]) + 1), history[key], style, label=("validation " if prefix else "training ") + metric)
        axis.set_xlabel("epoch")
        axis.set_title("tumor-slice Dice (threshold 0.5)" if metric == "dice" else "loss")
        axis.legend()
    uri = _figure_png(figure)
    plt.close(figure)
    return uri


def _bucket_chart(by_slice: dict[str, dict[str, float]]) -> str:
    plt = _pyplot()
    names = [name for name in contracts.REPORTED_SLICES if name in by_slice and name != features.BUCKET_NONE]
    figure, axis = plt.subplots(figsize=(6, 3))
    positions = np.arange(len(names))
    for offset, key in ((-0.2, "dice_per_tumor_slice_mean"), (0.2, "tumor_slice_detection_rate")):
        values = [by_slice[name].get(key, float("nan")) for name in names]
        axis.bar(positions + offset, values, width=0.4, label=key)
    axis.set_xticks(positions, names)
    axis.set_ylim(0, 1)
    axis.legend(loc="lower right")
    uri = _figure_png(figure)
    plt.close(figure)
    return uri


def gallery(model_dir: str, examples_uri: str, split: str = "test", per_bucket: int = 3) -> list[GalleryItem]:
    """Best, median and worst test slices by Dice per tumor size, and the worst empty-slice false positives."""
    import tensorflow as tf

    model = ServedModel.load(model_dir)
    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    scored = []
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(16):
        # The model parses the examples itself (with its own context slices);
        # the picture and the truth are the slice's own three channels.
        images, masks = parse_examples(serialized)
        parsed = tf.io.parse_example(
            serialized,
            {
                features.CASE_ID: tf.io.FixedLenFeature([], tf.string),
                features.SLICE_INDEX: tf.io.FixedLenFeature([], tf.int64),
                features.TUMOR_SIZE_BUCKET: tf.io.FixedLenFeature([], tf.string),
            },
        )
        predicted = model.predict_examples(serialized.numpy()).mask > 0  # the model's post-processed masks
        for i in range(len(predicted)):
            truth = masks[i, ..., 0].numpy()
            counts = metrics.slice_counts(
                truth, predicted[i], parsed[features.CASE_ID][i].numpy().decode(), int(parsed[features.SLICE_INDEX][i])
            )
            bucket = parsed[features.TUMOR_SIZE_BUCKET][i].numpy().decode()
            scored.append((bucket, counts, overlay.overlay(images[i].numpy(), predicted[i].astype(np.uint8), truth)))
    items = []
    for bucket in (features.BUCKET_SMALL, features.BUCKET_MEDIUM, features.BUCKET_LARGE):
        ranked = sorted((entry for entry in scored if entry[0] == bucket), key=lambda entry: entry[1].dice)
        if not ranked:
            continue
        picks = {"worst": ranked[0], "median": ranked[len(ranked) // 2], "best": ranked[-1]}
        for label, (_, counts, picture) in picks.items():
            items.append(GalleryItem(f"{bucket} · {label} · {counts.case_id} #{counts.slice_index} · Dice {counts.dice:.2f}", picture))
    false_positives = sorted(
        (entry for entry in scored if entry[0] == features.BUCKET_NONE and entry[1].pred_pixels), key=lambda e: -e[1].pred_pixels
    )
    for _, counts, picture in false_positives[:per_bucket]:
        items.append(
            GalleryItem(f"empty slice · false positive · {counts.case_id} #{counts.slice_index} · {counts.pred_pixels} px", picture)
        )
    return items


def volume_metrics_of_split(model_dir: str, examples_uri: str, split: str = "test") -> list[dict]:
    """Per-patient 3D metrics (`core.metrics.volume_metrics`) of the `split` patients whose examples carry
    their spacing (volume layouts; TIFF slices carry none and give []), on the 256 x 256 grid they were
    ingested at, the slices stacked by slice index (slices without head voxels, never ingested, count as empty)."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    spec = {
        features.CASE_ID: tf.io.FixedLenFeature([], tf.string),
        features.SLICE_INDEX: tf.io.FixedLenFeature([], tf.int64),
        features.PIXEL_SPACING_MM: tf.io.FixedLenFeature([], tf.float32, default_value=features.UNKNOWN_SPACING),
        features.SLICE_SPACING_MM: tf.io.FixedLenFeature([], tf.float32, default_value=features.UNKNOWN_SPACING),
    }
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    for serialized in records.take(1).batch(1):  # TIFF slices carry no spacing: nothing to load the model for
        if float(tf.io.parse_example(serialized, spec)[features.PIXEL_SPACING_MM][0]) <= 0:
            return []
    model = ServedModel.load(model_dir)
    cases: dict[str, dict] = {}
    for serialized in records.batch(16):
        parsed = tf.io.parse_example(serialized, spec)
        if float(tf.reduce_min(parsed[features.PIXEL_SPACING_MM])) <= 0:
            return []  # a mix of layouts: no volumes to speak of
        _, masks = parse_examples(serialized)
        predicted = model.predict_examples(serialized.numpy()).mask > 0  # the model's post-processed masks
        for i in range(len(predicted)):
            case = cases.setdefault(parsed[features.CASE_ID][i].numpy().decode(), {"slices": {}})
            case["spacing"] = (float(parsed[features.PIXEL_SPACING_MM][i]),) * 2 + (float(parsed[features.SLICE_SPACING_MM][i]),)
            case["slices"][int(parsed[features.SLICE_INDEX][i])] = (masks[i, ..., 0].numpy() > 0, predicted[i])
    rows = []
    for case_id, case in sorted(cases.items()):
        height, width = next(iter(case["slices"].values()))[0].shape
        truth = np.zeros((height, width, max(case["slices"])), bool)
        prediction = np.zeros_like(truth)
        for index, (truth_slice, predicted_slice) in case["slices"].items():
            truth[..., index - 1], prediction[..., index - 1] = truth_slice, predicted_slice
        rows.append(metrics.volume_metrics(truth, prediction, case["spacing"], case_id))
    return rows


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
img{max-width:100%;height:auto}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0;width:260px} figcaption{font-size:.8em}
.ok{color:#176f2c;font-weight:bold} .bad{color:#b00020;font-weight:bold} .note{color:#555;font-size:.9em}
"""


class _Run:
    """The latest artifacts of a run, by component and output key."""

    def __init__(self, run_dir: str, pipeline_name: str):
        self.summary = run_summary.summarize_run(os.path.join(run_dir, "metadata.sqlite"), pipeline_name)
        self._runs = {run.component: run for run in self.summary.components}

    def artifact(self, component: str, key: str):
        run = self._runs.get(component)
        return run.outputs[key][0] if run and run.outputs.get(key) else None


def _training_history(run: _Run) -> dict:
    model_run = run.artifact("Trainer", "model_run")
    if model_run is None or not os.path.isfile(os.path.join(model_run.uri, contracts.HISTORY_FILE)):
        return {}
    with open(os.path.join(model_run.uri, contracts.HISTORY_FILE)) as source:
        return json.load(source)


def _section_run(run: _Run, history: dict) -> list[str]:
    rows = [[r.component, r.state, f"{r.seconds:.1f}"] for r in run.summary.components]
    parts = ["<h2 id='run'>Run</h2>", _table(["component", "state", "seconds"], rows)]
    if history.get("config"):
        options = ", ".join(f"{key}={value}" for key, value in sorted(history["config"].items()))
        parts.append(f"<p>Training options: {html.escape(options)}</p>")
    return parts


def _section_data(run: _Run, history: dict) -> list[str]:

    parts = ["<h2 id='data'>Data</h2>"]
    if run.summary.splits:
        buckets = list(features.TUMOR_SIZE_BUCKETS)
        rows = [
            [split, stats["slices"], stats["patients"], *[stats["buckets"].get(b, 0) for b in buckets]]
            for split, stats in run.summary.splits.items()
        ]
        parts.append(_table(["split", "slices", "patients", *[f"{b} slices" for b in buckets]], rows))
        for warning in run_summary.few_patients_warnings(run.summary.patients_by_split):
            parts.append(f"<p class='bad'>{html.escape(warning)}</p>")
    anomalies = run.artifact("ExampleValidator", "anomalies")
    if anomalies is not None:
        found = describe_anomalies(anomalies.uri, run_summary.split_names(anomalies))
        verdict = "<span class='ok'>none</span>" if not found else f"<span class='bad'>{html.escape('; '.join(found))}</span>"
        parts.append(f"<p>Anomalies: {verdict}</p>")
    if run.summary.rejected_files is not None:
        parts.append(f"<p>Rejected files: {run.summary.rejected_files} (list in {html.escape(run.summary.rejected_list)})</p>")
    ratio = run.summary.positive_pixel_weight
    if ratio is not None:
        line = f"Positive-pixel weight (negative / positive pixels of the train split): <b>{ratio:.1f}</b>"
        options = history.get("config", {})
        if "positive_weight_exponent" in options and options.get("loss", "").startswith("weighted_"):
            weight = TrainingConfig(positive_weight_exponent=options["positive_weight_exponent"]).tumor_pixel_weight(ratio)
            line += f"; the loss weighs a tumor pixel {ratio:.1f} ** {options['positive_weight_exponent']} = <b>{weight:.1f}</b>"
        parts.append(f"<p>{line}</p>")
    return parts


def _selection_metric(history: dict) -> str:
    """The metric that chose the best epoch, in words; runs before the options existed used the
    tumor-slice Dice, each epoch's own."""
    config = history.get("config", {})
    metric = config.get("selection_metric", "dice_per_tumor_slice_mean")
    smoothing = config.get("selection_smoothing", 0.0)
    return f"{metric}, moving average with weight {smoothing} on the previous epochs" if smoothing else metric


def _section_training(history: dict) -> list[str]:
    parts = ["<h2 id='training'>Training</h2>"]
    if not history.get("history"):
        return parts + ["<p class='note'>No training history found.</p>"]
    return parts + [
        f"<img alt='training curves' src='{_curves(history['history'], selection_series(history), history.get('best_epoch'))}'>",
        f"<p>Best epoch (validation {html.escape(_selection_metric(history))} on the eval patients): "
        f"{history.get('best_epoch')}; its weights were exported.</p>",
    ]


def blessing_thresholds(evaluation_uri: str) -> list[str]:
    """The Evaluator's thresholds in words, from the eval_config.json it wrote."""
    with open(os.path.join(evaluation_uri, "eval_config.json")) as source:
        config = json.load(source)["evalConfig"]
    lines = []
    for spec in config.get("metricsSpecs", []):
        for metric, per_slice in spec.get("perSliceThresholds", {}).items():
            for threshold in per_slice.get("thresholds", []):
                where = " and ".join(
                    "overall" if not s else ", ".join(f"{k}={v}" for k, v in s.get("featureValues", {}).items())
                    for s in threshold.get("slicingSpecs", [{}])
                )
                value = threshold.get("threshold", {})
                bounds = value.get("valueThreshold", {})
                if "lowerBound" in bounds:
                    lines.append(f"{metric} ≥ {bounds['lowerBound']} ({where})")
                if "upperBound" in bounds:
                    lines.append(f"{metric} ≤ {bounds['upperBound']} ({where})")
                if "changeThreshold" in value:
                    change = value["changeThreshold"]
                    tolerance = abs(float(change.get("absolute", 0)))
                    worse = "above" if change.get("direction") == "LOWER_IS_BETTER" else "below"
                    lines.append(f"{metric} at most {tolerance:g} {worse} the served model ({where})")
    if lines and not any("served model" in line for line in lines):
        lines.append("no comparison: no model was served yet")  # TFX drops change thresholds without a baseline
    return lines


def _section_evaluation(run: _Run) -> list[str]:
    by_slice = run.summary.metrics_by_slice
    parts = ["<h2 id='evaluation'>Evaluation on the test patients</h2>"]
    if by_slice:
        names = [n for n in contracts.REPORTED_SLICES if n in by_slice]
        rows = [[key, *[_format(by_slice[n].get(key)) for n in names]] for key in metrics.METRIC_KEYS]
        parts += [_table(["metric", *names], rows), f"<img alt='metrics by tumor size' src='{_bucket_chart(by_slice)}'>"]
    decision = "<span class='ok'>blessed</span>" if run.summary.blessed else "<span class='bad'>not blessed</span>"
    evaluation = run.artifact("Evaluator", "evaluation")
    gates = blessing_thresholds(evaluation.uri) if evaluation is not None else []
    parts.append(f"<p>Decision: {decision}. Gates: {html.escape('; '.join(gates)) or 'none'}.</p>")
    pushed = run.summary.pushed_to
    parts.append(f"<p>Pushed to: {html.escape(pushed)}</p>" if pushed else "<p>Not pushed.</p>")
    return parts + _volume_table(run)


def _volume_table(run: _Run) -> list[str]:
    """Per-patient Dice, HD95 and volume error of the test patients, when the data were volumes."""
    model, examples = run.artifact("Trainer", "model"), run.artifact("FileBasedExampleGen", "examples")
    if model is None or examples is None:
        return []
    patients = volume_metrics_of_split(os.path.join(model.uri, contracts.SERVING_SUBDIR), examples.uri)
    if not patients:
        return []
    summary = metrics.summarize_volumes(patients)
    keys = ("dice", "hd95_mm", "volume_error_ml", "truth_ml", "prediction_ml")
    rows = [[row["case_id"], *[_format(row[key]) for key in keys]] for row in patients]
    return [
        "<h3>Volumes (test patients, 3D on the ingestion grid)</h3>",
        _table(["patient", *keys], rows),
        _table(["metric", "value"], [[key, _format(summary[key])] for key in metrics.VOLUME_METRIC_KEYS]),
        "<p class='note'>HD95 in mm and volumes in mL from the examples' spacing; `unet4mri evaluate` scores "
        "the same at each scan's native resolution (definitions in docs/metrics.md).</p>",
    ]


def _section_gallery(run: _Run) -> list[str]:
    parts = ["<h2 id='gallery'>Gallery (test patients; truth outline green, prediction red)</h2>"]
    model, examples = run.artifact("Trainer", "model"), run.artifact("FileBasedExampleGen", "examples")
    if model is None or examples is None:
        return parts
    figures = []
    for item in gallery(os.path.join(model.uri, contracts.SERVING_SUBDIR), examples.uri):
        title = html.escape(item.title)
        figures.append(f"<figure><img width='256' alt='{title}' src='{_png(item.image)}'><figcaption>{title}</figcaption></figure>")
    return parts + ["<div class='gallery'>" + "".join(figures) + "</div>"]


def build_report(run_dir: str, output: str | None = None, pipeline_name: str = "unet4mri") -> str:
    """Write the HTML report of the run in `run_dir` (an `unet4mri run --output-dir`); returns its path."""
    run = _Run(run_dir, pipeline_name)
    history = _training_history(run)
    parts = [f"<h1>UNet4MRI run report</h1><p class='note'>{html.escape(os.path.abspath(run_dir))}</p>"]
    parts += _section_run(run, history) + _section_data(run, history) + _section_training(history)
    parts += _section_evaluation(run) + _section_gallery(run)
    head = f"<meta charset='utf-8'><title>UNet4MRI report</title><style>{_STYLE}</style>"
    page = f"<!DOCTYPE html><html lang='en'><head>{head}</head><body>{''.join(parts)}</body></html>"
    output = output or os.path.join(run_dir, "report.html")
    with open(output, "w") as out:
        out.write(page)
    return output
