import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import synthetic_data
from models import input_pipeline, networks
from models.config import testing_config
from models.trainer_module import compile_model, monitored_metric, selection_callbacks, train
from tests.helpers import write_examples


@pytest.fixture(scope="module")
def split_records(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    train_cases = [synthetic_data.case_id(i, 0) for i in (0, 1, 3, 4)]
    eval_cases = [synthetic_data.case_id(i, 0) for i in (2, 5)]
    return write_examples(tiny_dataset, str(root / "train"), train_cases), write_examples(tiny_dataset, str(root / "eval"), eval_cases)


def test_train_returns_the_best_epoch_and_its_weights(split_records, tmp_path):
    train_files, eval_files = split_records
    result = train(testing_config(epochs=2, early_stopping_patience=2), [train_files], [eval_files], 20.0, str(tmp_path))
    assert set(result.history) >= {"loss", "dice", "val_dice", "val_loss", "val_dice_pooled", "val_empty_slice_fp_rate"}
    assert len(result.history["loss"]) == 2 and 1 <= result.best_epoch <= 2
    assert os.path.isfile(tmp_path / "best.weights.h5")


class _Counter(keras.callbacks.Callback):
    """The epochs begun and the training steps of each."""

    def __init__(self):
        super().__init__()
        self.epochs, self.steps = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


@pytest.mark.parametrize("min_steps", [1, 8])
def test_an_epoch_has_at_least_the_minimum_steps(split_records, tmp_path, min_steps):
    train_files, eval_files = split_records  # 4 train cases: a pass is fewer than 8 batches of 8
    config = testing_config(epochs=2, early_stopping_patience=2, min_steps_per_epoch=min_steps)
    counter = _Counter()
    train(config, [train_files], [eval_files], 20.0, str(tmp_path), extra_callbacks=[counter])
    slices, _ = input_pipeline.count_slices([train_files])
    assert slices // config.batch_size < 8
    assert counter.steps == [max(slices // config.batch_size, min_steps)] * 2


def test_train_with_hard_negatives_logs_the_pool_every_epoch(split_records, tmp_path):
    from models import hard_negatives

    train_files, eval_files = split_records
    config = testing_config(epochs=2, early_stopping_patience=2, hard_negative_fraction=0.5)
    result = train(config, [train_files], [eval_files], 20.0, str(tmp_path))
    pool = hard_negatives.load_pool([train_files], config)
    sizes = result.history[hard_negatives.POOL_LOG_KEY]
    assert len(sizes) == len(result.history["loss"]) == 2
    assert all(pool.size <= size <= len(pool.ends) for size in sizes)  # at least the volume ends, at most every tumor-free slice


@pytest.mark.parametrize(
    "network, selection_metric, key",
    [
        (dict(model="unet"), "dice_pooled", "val_dice_pooled"),
        (dict(model="unet"), "dice_per_tumor_slice_mean", "val_dice"),
        (dict(model="unetpp", deep_supervision=True), "dice_pooled", "val_logits_l2_dice_pooled"),  # the deepest head
        (dict(model="unetpp", deep_supervision=True), "dice_per_tumor_slice_mean", "val_logits_l2_dice"),
    ],
)
def test_the_monitored_key_is_in_the_logs(network, selection_metric, key):
    config = testing_config(selection_metric=selection_metric, **network)
    model = networks.build_model(config)
    compile_model(model, config, positive_pixel_weight=1.0)
    images, masks = np.zeros((2, 32, 32, 3), "float32"), np.zeros((2, 32, 32, 1), "float32")
    heads = len(model.outputs)
    logs = model.evaluate(images, masks if heads == 1 else (masks,) * heads, return_dict=True, verbose=0)
    assert monitored_metric(model, selection_metric) == key
    assert key.removeprefix("val_") in logs  # fit logs the validation value under "val_" + this name
    assert any(name.endswith("empty_slice_fp_rate") for name in logs)
    with pytest.raises(ValueError, match="selection_metric"):
        monitored_metric(model, "empty_slice_fp_rate")  # lower is better: not a selection metric


@pytest.mark.parametrize("exponent, weight", [(1.0, 400.0), (0.5, 20.0)])
def test_the_compiled_loss_weighs_tumor_pixels_by_the_tempered_ratio(exponent, weight):
    config = testing_config(loss="weighted_bce", positive_weight_exponent=exponent)
    model = networks.build_model(config)
    compile_model(model, config, positive_pixel_weight=400.0)
    # One tumor pixel at logit 0 among background at logit -inf: the loss is weight * log 2 / pixels.
    y_true = np.zeros((1, 4, 4, 1), "float32")
    y_true[0, 1, 1, 0] = 1.0
    logits = np.full((1, 4, 4, 1), -1e4, "float32")
    logits[0, 1, 1, 0] = 0.0
    assert float(model.loss(y_true, logits)) == pytest.approx(weight * np.log(2.0) / 16, rel=1e-5)


def test_deep_supervision_trains_every_head_on_the_augmented_masks(split_records, tmp_path):
    train_files, eval_files = split_records
    config = testing_config(model="unetpp", deep_supervision=True)
    result = train(config, [train_files], [eval_files], 20.0, str(tmp_path))
    assert {"logits_l1_loss", "logits_l2_loss", monitored_metric(result.model, config.selection_metric)} <= set(result.history)
    assert len(result.model.outputs) == 2  # the network itself: no augmentation in what is exported


def test_mixed_precision_keeps_logits_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = networks.build_model(testing_config())
        assert model.get_layer("x0_0_conv1").compute_dtype == "float16"
        assert model(np.zeros((1, 32, 32, 3), "float32")).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_training_is_distributed_over_two_logical_devices(split_records, tmp_path):
    train_files, eval_files = split_records
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from models.config import testing_config
        from models.trainer_module import train
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        result = train(testing_config(batch_size=4), [{train_files!r}], [{eval_files!r}], 20.0, {str(tmp_path)!r}, strategy=strategy)
        print(strategy.num_replicas_in_sync, result.history["loss"][-1] == result.history["loss"][-1])
    """)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=os.getcwd())
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.strip().splitlines()[-1] == "2 True"


class _Interrupt(keras.callbacks.Callback):
    """Stands in for a killed process: raises after `epochs` epochs."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


def test_an_interrupted_training_resumes_after_its_last_epoch(split_records, tmp_path):
    train_files, eval_files = split_records
    config = testing_config(epochs=5, early_stopping_patience=5, selection_smoothing=0.5)
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        train(config, [train_files], [eval_files], 20.0, str(tmp_path / "a"), backup_dir=backup, extra_callbacks=[_Interrupt(3)])
    interrupted_lr = json.load(open(os.path.join(backup, "progress.json")))["learning_rate"]
    counter = _Counter()
    result = train(config, [train_files], [eval_files], 20.0, str(tmp_path / "b"), backup_dir=backup, extra_callbacks=[counter])
    assert result.resumed_from_epoch == 3
    assert counter.epochs == [3, 4]  # only the epochs the first run did not finish
    assert len(result.history["loss"]) == len(result.history["val_dice"]) == 5
    assert 1 <= result.best_epoch <= 5 and interrupted_lr > 0
    pooled, smoothed = result.history["val_dice_pooled"], result.history["val_dice_pooled_smoothed"]
    assert smoothed[3] == pytest.approx(0.5 * smoothed[2] + 0.5 * pooled[3]) != pytest.approx(pooled[3])  # went on across the restart
    fresh = train(config, [train_files], [eval_files], 20.0, str(tmp_path / "c"), backup_dir=str(tmp_path / "other"))
    assert fresh.resumed_from_epoch == 0


def test_a_kill_while_checkpoints_are_written_leaves_a_resumable_backup(split_records, tmp_path):
    """What a SIGKILL during a write leaves (half-written weights beside the last complete
    checkpoint) does not stop the rerun, which resumes from that checkpoint."""
    train_files, eval_files = split_records
    config = testing_config(epochs=4, early_stopping_patience=4)
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        train(config, [train_files], [eval_files], 20.0, str(tmp_path / "a"), backup_dir=str(backup), extra_callbacks=[_Interrupt(2)])
    committed = json.loads((backup / "progress.json").read_text(encoding="utf-8"))
    assert committed["epochs"] == 2 and sorted(path.name for path in backup.glob("epoch-*")) == [committed["weights"]]
    for torn in ("epoch-3.weights.h5", "best.partial.weights.h5", "progress.json.tmp"):
        (backup / torn).write_bytes(b"\x89HDF\r\n half written")
    result = train(config, [train_files], [eval_files], 20.0, str(tmp_path / "b"), backup_dir=str(backup))
    assert result.resumed_from_epoch == 2 and len(result.history["loss"]) == 4
    assert not (backup / "epoch-3.weights.h5").exists()  # the leftover of the killed write is gone


def test_best_weights_are_replaced_only_when_the_monitored_value_improves(tmp_path):
    import keras

    from models.trainer_module import BestWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestWeights(str(tmp_path / "best.weights.h5"), "val_dice")
    best.set_model(model)
    for epoch, value in enumerate([float("nan"), 0.5, 0.4, 0.7]):
        model.layers[0].bias.assign([float(epoch)])
        best.on_epoch_end(epoch, {"val_dice": value})
    assert best.best == 0.7
    restored = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    restored.load_weights(str(tmp_path / "best.weights.h5"))
    assert float(restored.layers[0].bias.numpy()[0]) == 3.0
    assert not list(tmp_path.glob("*.partial.*"))


# Four 8x8 validation slices for a 1x1 convolution whose weights each epoch sets:
# channel 0 is the truth mask times a per-pixel intensity in [0.2, 1], channel 1 is 1 on the
# tumor-free slices, so the weights decide which tumor pixels are found and whether the
# healthy slices are painted.
_CAREFUL = ([10.0, 0.0], -4.0)  # finds tumor pixels brighter than 0.4, nothing on healthy slices
_PAINTER = ([10.0, 10.0], -1.0)  # finds every tumor pixel, paints every pixel of the healthy slices
_WORSE = ([10.0, 0.0], -7.0)  # finds tumor pixels brighter than 0.7 only


def _selection_data():
    truth = np.zeros((4, 8, 8, 1), "float32")
    truth[0, 2:6, 2:6] = truth[1, 1:4, 3:7] = 1.0
    intensity = np.random.default_rng(0).uniform(0.2, 1.0, truth.shape).astype("float32")
    healthy = np.broadcast_to((truth.sum(axis=(1, 2, 3)) == 0)[:, None, None, None], truth.shape).astype("float32")
    return np.concatenate([truth * intensity, healthy], axis=-1), truth


class _ScriptedWeights(keras.callbacks.Callback):
    """Before each epoch's validation, sets the weights of that epoch (training steps are overwritten)."""

    def __init__(self, script):
        super().__init__()
        self.script, self.epoch = script, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_test_begin(self, logs=None):
        kernel, bias = self.script[self.epoch]
        self.model.get_layer("logits").set_weights([np.array(kernel, "float32").reshape(1, 1, 2, 1), np.array([bias], "float32")])


@pytest.mark.parametrize("selection_metric, chosen_epoch", [("dice_pooled", 0), ("dice_per_tumor_slice_mean", 1)])
def test_a_model_that_paints_healthy_slices_is_not_the_best_epoch(selection_metric, chosen_epoch, tmp_path):
    """A real fit with the Trainer's compiled metrics and selection callbacks: epoch 1 paints every
    healthy slice but finds all tumor pixels; the pooled Dice (default) keeps epoch 0, the old
    tumor-slice Dice would pick the painter."""
    images, masks = _selection_data()
    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="logits")(inputs))
    config = testing_config(selection_metric=selection_metric, early_stopping_patience=3, loss="bce", selection_smoothing=0.0)
    compile_model(model, config, positive_pixel_weight=1.0)
    best_path = str(tmp_path / "best.weights.h5")
    smoothed, *callbacks = selection_callbacks(model, config, best_path)
    _, early_stopping, _ = callbacks
    assert smoothed is None  # each epoch's own figure
    script = [_CAREFUL, _PAINTER, _WORSE]
    history = model.fit(
        images,
        masks,
        validation_data=(images, masks),
        epochs=3,
        batch_size=4,
        callbacks=[_ScriptedWeights(script), *callbacks],
        verbose=0,
    ).history
    assert history["val_empty_slice_fp_rate"] == [0.0, 1.0, 0.0]
    tumor_dice, pooled = history["val_dice"], history["val_dice_pooled"]
    assert tumor_dice[1] == pytest.approx(1.0) and tumor_dice[1] > tumor_dice[0] > tumor_dice[2]  # the painter looks best ...
    assert pooled[0] > pooled[2] > pooled[1]  # ... until the healthy slices count
    assert early_stopping.best_epoch == chosen_epoch
    model.load_weights(best_path)
    kernel, bias = model.get_layer("logits").get_weights()
    assert (kernel.ravel().tolist(), float(bias[0])) == script[chosen_epoch]


@pytest.mark.parametrize("smoothing, epochs_run, best_epoch", [(0.0, 5, 1), (0.5, 6, 5)])
def test_smoothing_keeps_one_lucky_epoch_from_being_the_best_and_ending_the_run(smoothing, epochs_run, best_epoch, tmp_path):
    """Epoch 1 is as good as the model becomes from epoch 4 on, between worse epochs: alone, it is the
    best and ends the run (patience 3); the moving average (0.5) waits for the lasting gain."""
    images, masks = _selection_data()
    inputs = keras.Input((8, 8, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="logits")(inputs))
    config = testing_config(early_stopping_patience=3, loss="bce", selection_smoothing=smoothing)
    compile_model(model, config, positive_pixel_weight=1.0)
    smoothed, checkpoint, early_stopping, reduce_lr = selection_callbacks(model, config, str(tmp_path / "best.weights.h5"))
    callbacks = [smoothed, checkpoint, early_stopping, reduce_lr] if smoothed else [checkpoint, early_stopping, reduce_lr]
    script = [_WORSE, _CAREFUL, _WORSE, _WORSE, _CAREFUL, _CAREFUL]
    history = model.fit(
        images, masks, validation_data=(images, masks), epochs=6, batch_size=4, callbacks=[_ScriptedWeights(script), *callbacks], verbose=0
    ).history
    assert len(history["val_dice_pooled"]) == epochs_run and early_stopping.best_epoch == best_epoch
    if smoothed:
        pooled, average = history["val_dice_pooled"], [history["val_dice_pooled"][0]]
        for value in pooled[1:]:
            average.append(0.5 * average[-1] + 0.5 * value)
        assert history["val_dice_pooled_smoothed"] == pytest.approx(average) and checkpoint.monitor == smoothed.key


def test_run_fn_chooses_the_post_processing_on_the_eval_split_and_exports_it(split_records, tmp_path):
    from types import SimpleNamespace

    from core import contracts, metrics, postprocessing
    from models.trainer_module import run_fn

    train_files, eval_files = split_records
    config = testing_config(epochs=1)
    fn_args = SimpleNamespace(
        custom_config={"training": dataclasses.asdict(config)},
        hyperparameters={contracts.POSITIVE_PIXEL_WEIGHT: 20.0},
        base_model=None,
        train_files=[train_files],
        eval_files=[eval_files],
        model_run_dir=str(tmp_path / "Trainer" / "model_run" / "1"),
        serving_model_dir=str(tmp_path / "serving"),
    )
    run_fn(fn_args)
    history = json.loads((tmp_path / "Trainer" / "model_run" / "1" / contracts.HISTORY_FILE).read_text())
    assert history["monitor"] == "val_dice_pooled_smoothed" and len(history["history"][history["monitor"]]) == 1
    report = json.loads((tmp_path / "Trainer" / "model_run" / "1" / contracts.POSTPROCESSING_FILE).read_text())
    with open(os.path.join(fn_args.serving_model_dir, contracts.MODEL_INFO_DIR, contracts.MODEL_INFO_FILE)) as source:
        info = json.load(source)
    assert info[contracts.INFO_POSTPROCESSING] == report["chosen"] and info[contracts.INFO_POSTPROCESSING_CHOICE] == report
    assert set(report["before"]) == set(report["after"]) == set(metrics.METRIC_KEYS)
    assert len(report["grid"]) >= len(postprocessing.THRESHOLD_GRID) + len(postprocessing.MIN_COMPONENT_PIXELS_GRID) - 2
    # The exported mask output applies the chosen spec.
    model = tf.saved_model.load(fn_args.serving_model_dir)
    [serialized] = list(tf.data.TFRecordDataset(tf.io.gfile.glob(eval_files), compression_type="GZIP").batch(64))
    out = model.signatures["serving_default"](examples=serialized)
    chosen = postprocessing.PostProcessing.from_dict(report["chosen"])
    np.testing.assert_array_equal(out["mask"].numpy(), postprocessing.apply(out["probabilities"].numpy(), chosen))
    assert out["probabilities"].shape[0] == 20 and out["probabilities"].shape[1:] == (256, 256)


def test_eval_split_slices_are_the_exported_models_probabilities(split_records, tmp_path):
    from models.export import export_serving_model
    from models.trainer_module import eval_split_slices

    _, eval_files = split_records
    config = testing_config(dropout_rate=0.0)
    model = networks.build_model(config)
    slices = eval_split_slices(model, config, [eval_files], batch_size=7)
    export_serving_model(model, config, str(tmp_path / "model"))
    records = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(eval_files), compression_type="GZIP").batch(64)))
    exported = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"](examples=records)["probabilities"].numpy()
    assert {s.case_id for s in slices} == {synthetic_data.case_id(i, 0) for i in (2, 5)} and len(slices) == len(exported) == 20
    np.testing.assert_allclose(np.stack([s.probabilities for s in slices]), exported, atol=1e-6)
    assert all(s.truth.shape == (256, 256) and s.truth.dtype == bool for s in slices)
