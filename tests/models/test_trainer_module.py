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
from models import networks
from models.config import testing_config
from models.trainer_module import monitored_metric, train
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
    assert set(result.history) >= {"loss", "dice", "val_dice", "val_loss"}
    assert len(result.history["loss"]) == 2 and 1 <= result.best_epoch <= 2
    assert os.path.isfile(tmp_path / "best.weights.h5")


def test_deep_supervision_monitors_the_deepest_head():
    model = networks.build_model(testing_config(model="unetpp", deep_supervision=True))
    assert monitored_metric(model) == "val_logits_l2_dice"


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


class _Counter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_an_interrupted_training_resumes_after_its_last_epoch(split_records, tmp_path):
    train_files, eval_files = split_records
    config = testing_config(epochs=5, early_stopping_patience=5)
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
