"""The TFX Trainer's module: `run_fn` is glue around `train`, the choice of the
post-processing on the eval split (`choose_postprocessing`) and `export_serving_model`.

Inputs through TFX:
- `fn_args.custom_config["training"]`: the TrainingConfig as a dict (known when
  the pipeline is built);
- `fn_args.hyperparameters`: the positive-pixel statistics JSON emitted by the
  PositivePixelWeight component at run time (`positive_pixel_weight` =
  negative / positive pixels of the train split);
- `fn_args.base_model`: an optional pushed model to warm-start from.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os

import keras
import numpy as np
import tensorflow as tf

from core import postprocessing
from core.contracts import HISTORY_FILE, POSITIVE_PIXEL_WEIGHT, POSTPROCESSING_FILE, PROBABILITIES, SERVING_SIGNATURE
from data_schema import features
from models import determinism, hard_negatives, input_pipeline, losses, networks
from models.config import SELECTION_METRICS, WARM_START_SERVED, TrainingConfig
from models.export import INPUT_SPECS, export_serving_model, serving_functions
from models.segmentation_metrics import KERAS_NAMES, training_metrics
from models.training_model import as_model_inputs, training_model

BEST_WEIGHTS_FILE = "best.weights.h5"


PROGRESS_FILE = "progress.json"


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    model: keras.Model  # the network alone (what is exported), without the training-time augmentation
    history: dict[str, list[float]]
    best_epoch: int
    resumed_from_epoch: int = 0  # epochs restored from a checkpoint of an interrupted run
    monitor: str = ""  # the history key that chose the best epoch (e.g. val_dice_pooled_smoothed)


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """`model.save_weights(path)` (with the optimizer state) written beside `path` and renamed
    over it, so that a process killed during the write leaves the previous file whole."""
    partial = path[: -len(".weights.h5")] + ".partial.weights.h5"
    model.save_weights(partial, overwrite=True)
    tf.io.gfile.rename(partial, path, overwrite=True)


class BestWeights(keras.callbacks.Callback):
    """The weights of the epoch with the highest `monitor` so far, saved to `path` (atomically).

    `best` is None until an epoch reports a number (NaN, e.g. no eval tumor slice, never counts).
    """

    def __init__(self, path: str, monitor: str):
        super().__init__()
        self.path, self.monitor = path, monitor
        self.best: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None or not math.isfinite(current) or (self.best is not None and current <= self.best):
            return
        self.best = float(current)
        save_weights_atomically(self.model, self.path)


class SmoothedMetric(keras.callbacks.Callback):
    """Adds `<source>_smoothed` to each epoch's logs: the exponential moving average
    smoothing * previous + (1 - smoothing) * `source`, starting at the first finite value
    (a NaN epoch leaves it as it was). Placed before the callbacks that watch it."""

    def __init__(self, source: str, smoothing: float):
        super().__init__()
        self.source, self.smoothing = source, smoothing
        self.key = f"{source}_smoothed"
        self.value: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        current = logs.get(self.source)
        if current is not None and math.isfinite(current):
            self.value = float(current) if self.value is None else self.smoothing * self.value + (1.0 - self.smoothing) * float(current)
        logs[self.key] = math.nan if self.value is None else self.value


class TrainingProgress(keras.callbacks.Callback):
    """Makes a killed training resumable: after every epoch, one checkpoint in `backup_dir`.

    The checkpoint is the weights with the optimizer state (`epoch-<N>.weights.h5`)
    and `progress.json`, which names that file and holds the per-epoch history and
    the state of the best-weights, early-stopping and learning-rate callbacks.
    `progress.json` is replaced last, by a rename, so a kill at any moment leaves
    the previous complete checkpoint; a weights file it does not name is a
    leftover and is removed. (Keras' BackupAndRestore wrote its weights in place,
    and a kill during that write left a file the next run could not open.)
    Placed after the callbacks it restores.
    """

    def __init__(self, backup_dir: str, checkpoint: BestWeights, early_stopping, reduce_lr, smoothed: SmoothedMetric | None = None):
        super().__init__()
        self.backup_dir = backup_dir
        self.path = os.path.join(backup_dir, PROGRESS_FILE)
        self.checkpoint, self.early_stopping, self.reduce_lr = checkpoint, early_stopping, reduce_lr
        self.smoothed = smoothed
        self.history: dict[str, list[float]] = {}
        self.resumed_from_epoch = 0

    def on_train_begin(self, logs=None):
        if not tf.io.gfile.exists(self.path):
            return
        with tf.io.gfile.GFile(self.path) as source:
            state = json.load(source)
        if not self.model.optimizer.built:  # its variables must exist before they are loaded
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        self.model._initial_epoch = state["epochs"]  # fit() starts there (as Keras' BackupAndRestore does)
        self.history = state["history"]
        self.resumed_from_epoch = state["epochs"]
        self.checkpoint.best = state["best"]
        self.early_stopping.best, self.early_stopping.wait, self.early_stopping.best_epoch = (
            state["best"],  # None: no finite value yet, which EarlyStopping understands
            state["wait"],
            state["best_epoch"],
        )
        self.reduce_lr.best = state["best"] if state["best"] is not None else -math.inf  # ReduceLROnPlateau compares with a number
        self.reduce_lr.wait = state["lr_wait"]
        self.model.optimizer.learning_rate.assign(state["learning_rate"])
        if self.smoothed is not None:  # the moving average goes on from the last epoch's
            self.smoothed.value = _finite(self.history.get(self.smoothed.key, [None])[-1])
        logging.info("resuming training after epoch %d from %s", self.resumed_from_epoch, self.backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        weights = f"epoch-{epoch + 1}.weights.h5"
        self.model.save_weights(os.path.join(self.backup_dir, weights), overwrite=True)
        state = {
            "epochs": epoch + 1,
            "weights": weights,
            "history": self.history,
            "best": _finite(self.checkpoint.best),
            "wait": self.early_stopping.wait,
            "best_epoch": self.early_stopping.best_epoch,
            "lr_wait": self.reduce_lr.wait,
            "learning_rate": float(self.model.optimizer.learning_rate.numpy()),
        }
        with tf.io.gfile.GFile(self.path + ".tmp", "w") as out:
            json.dump(state, out)
        tf.io.gfile.rename(self.path + ".tmp", self.path, overwrite=True)  # the commit
        for leftover in tf.io.gfile.glob(os.path.join(self.backup_dir, "epoch-*.weights.h5")):
            if os.path.basename(leftover) != weights:
                tf.io.gfile.remove(leftover)


def _finite(value) -> float | None:
    """JSON-safe: None for the callbacks' initial +-inf (or NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def distribution_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers (multi-node),
    MirroredStrategy on a node with several GPUs, else the default (one device)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def compile_model(model: keras.Model, config: TrainingConfig, positive_pixel_weight: float, outputs: int | None = None) -> None:
    """Loss, metrics and optimizer; `outputs`: the network's heads (several with deep supervision),
    by default `model`'s own (pass it for a wrapper such as models.training_model's)."""
    loss = losses.make_loss(config.loss, config.tumor_pixel_weight(positive_pixel_weight))
    outputs = outputs or len(model.outputs)
    metrics = training_metrics()
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=[loss] * outputs if outputs > 1 else loss,
        # Deep supervision: equal weights over heads; metrics on the deepest head only.
        metrics=[[] for _ in range(outputs - 1)] + [metrics] if outputs > 1 else metrics,
        jit_compile=config.jit_compile,
    )


def monitored_metric(model: keras.Model, selection_metric: str) -> str:
    """The training-log key of the validation `selection_metric` (a `core.metrics` key, see
    `models.config.SELECTION_METRICS`): `val_dice_pooled` for one head; with deep supervision
    the deepest head's, e.g. `val_logits_l2_dice_pooled` (metrics are compiled on it only)."""
    if selection_metric not in SELECTION_METRICS:  # all higher-is-better: the callbacks use mode="max"
        raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {selection_metric!r}")
    name = KERAS_NAMES[selection_metric]
    return f"val_{model.output_names[-1]}_{name}" if len(model.outputs) > 1 else f"val_{name}"


def selection_callbacks(model: keras.Model, config: TrainingConfig, best_weights: str) -> tuple:
    """(SmoothedMetric or None, BestWeights, EarlyStopping, ReduceLROnPlateau): the last three watch
    `config.selection_metric` on the validation data (higher is better), smoothed over epochs
    when `config.selection_smoothing` > 0; the best epoch's weights go to `best_weights`."""
    monitor = monitored_metric(model, config.selection_metric)
    smoothed = SmoothedMetric(monitor, config.selection_smoothing) if config.selection_smoothing > 0 else None
    monitor = smoothed.key if smoothed else monitor
    checkpoint = BestWeights(best_weights, monitor)
    early_stopping = keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=config.early_stopping_patience)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, mode="max", factor=0.5, patience=max(config.early_stopping_patience // 2, 1)
    )
    return smoothed, checkpoint, early_stopping, reduce_lr


def train(
    config: TrainingConfig,
    train_files: list[str],
    eval_files: list[str],
    positive_pixel_weight: float,
    work_dir: str,
    log_dir: str | None = None,
    initial_weights: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
    backup_dir: str | None = None,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainingResult:
    """Train a network; returns it with the weights of its best epoch by `config.selection_metric`
    on the validation data (`selection_callbacks`).

    strategy: where to train (default: `distribution_strategy()`); batches are
      split over its replicas, so `config.batch_size` is the global batch.
    backup_dir: a folder that outlives a killed run: the weights, optimizer and
      callback state are saved there after every epoch, and a later call with
      the same folder resumes after the last saved epoch (the caller removes it
      once the model is exported).
    """
    if config.deterministic:
        determinism.make_deterministic()
    keras.utils.set_random_seed(config.seed)
    slices, tumor_slices = input_pipeline.count_slices(train_files)
    if slices == 0:
        raise ValueError(f"no training slices in {train_files}")
    oversample = 0 < tumor_slices < slices
    hard_pool = hard_negative_pool(config, train_files, oversample)  # its variables outside the strategy: tf.data reads them
    keras.mixed_precision.set_global_policy(f"mixed_{config.mixed_precision}" if config.mixed_precision else "float32")
    with (strategy or distribution_strategy()).scope():
        network = networks.build_model(config)
        if initial_weights:
            load_weights_from(network, initial_weights)
        # Augmentation runs inside the training step, on the accelerator (models.augmentation).
        model = training_model(
            network, config.augment, config.seed, config.background_structures, config.synthetic_lesions, config.coil_shading
        )
        compile_model(model, config, positive_pixel_weight, outputs=len(network.outputs))
    best_weights = os.path.join(backup_dir or work_dir, BEST_WEIGHTS_FILE)
    smoothed, checkpoint, early_stopping, reduce_lr = selection_callbacks(network, config, best_weights)
    callbacks = [checkpoint, early_stopping, reduce_lr]
    if smoothed is not None:  # before the callbacks that watch it
        callbacks.insert(0, smoothed)
    if hard_pool is not None:  # first: its pool size is in the logs the others record
        callbacks.insert(0, hard_negatives.HardNegativeMiner(hard_pool, network, config.batch_size))
    progress = None
    if backup_dir:
        tf.io.gfile.makedirs(backup_dir)
        progress = TrainingProgress(backup_dir, checkpoint, early_stopping, reduce_lr, smoothed)
        callbacks.append(progress)
    callbacks += extra_callbacks or []
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0))
    hard_stream = hard_pool.stream(config.seed + 3) if hard_pool is not None else None  # seed + 2: the patch crops
    history = model.fit(
        as_model_inputs(input_pipeline.training_dataset(train_files, config, oversample=oversample, hard_negatives=hard_stream)),
        steps_per_epoch=config.steps_per_epoch(slices),
        epochs=config.epochs,
        validation_data=as_model_inputs(input_pipeline.evaluation_dataset(eval_files, config)),
        callbacks=callbacks,
        verbose=2,
    )
    epochs = progress.history if progress else history.history
    scores = epochs.get(checkpoint.monitor, [])
    valid = [score for score in scores if score == score]  # NaN when nothing to measure (e.g. no eval tumor slice)
    best_epoch = scores.index(max(valid)) + 1 if valid else len(scores)
    if tf.io.gfile.exists(best_weights):
        model.load_weights(best_weights)
    return TrainingResult(network, epochs, best_epoch, progress.resumed_from_epoch if progress else 0, checkpoint.monitor)


def hard_negative_pool(config: TrainingConfig, train_files: list[str], oversample: bool) -> hard_negatives.HardNegativePool | None:
    """The hard-negative pool of the train files when `config.hard_negative_fraction` > 0 and the
    batches are oversampled (the data has tumor and tumor-free slices), else None."""
    if config.hard_negative_fraction == 0:
        return None
    if not oversample:
        logging.info("hard negatives off: the train split lacks tumor or tumor-free slices, so batches are not oversampled")
        return None
    return hard_negatives.load_pool(train_files, config)


def backup_dir_for(fn_args, config: TrainingConfig, positive_pixel_weight: float, warm_start: str | None) -> str:
    """`<pipeline_root>/Trainer/backup/<key>`: a folder that a rerun of the same
    training (same code, configuration and input files) finds again, where the
    Trainer's own `model_run` folder is new for every execution."""
    key = json.dumps(
        [
            config.to_json(),
            fn_args.custom_config.get("model_code"),
            fn_args.train_files,
            fn_args.eval_files,
            positive_pixel_weight,
            warm_start,
        ]
    )
    trainer_root = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
    return os.path.join(trainer_root, "backup", hashlib.sha256(key.encode()).hexdigest()[:16])


def load_weights_from(model: keras.Model, saved_model_dir: str) -> None:
    """Warm start: copy the variables of a pushed SavedModel into `model` by name and shape."""
    loaded = tf.saved_model.load(saved_model_dir)
    by_path = {variable.name.split(":")[0]: variable for variable in loaded.variables}  # "x0_0_conv1/kernel:0"
    matched = 0
    for variable in model.variables:
        source = by_path.get(variable.path)
        if source is not None and tuple(source.shape) == tuple(variable.shape):
            variable.assign(source.numpy())
            matched += 1
    if matched == 0:
        raise ValueError(f"{saved_model_dir}: no variable matches the network; was it trained with another --model or --n-filters?")
    logging.info("warm start: %d of %d variables from %s", matched, len(model.variables), saved_model_dir)


def eval_split_slices(
    model: keras.Model, config: TrainingConfig, eval_files: list[str], batch_size: int = 32
) -> list[postprocessing.EvalSlice]:
    """Every slice of `eval_files` (core.postprocessing.EvalSlice: truth and raw probabilities at the
    slice's native size), predicted by the `serving_default` function the export writes for `model`."""
    network = networks.inference_model(model, config)
    function = serving_functions(network, config, postprocessing.PostProcessing())[SERVING_SIGNATURE]
    predict = tf.function(function, input_signature=[INPUT_SPECS[SERVING_SIGNATURE]])
    spec = {
        features.CASE_ID: tf.io.FixedLenFeature([], tf.string),
        features.SLICE_INDEX: tf.io.FixedLenFeature([], tf.int64),
        features.HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        features.WIDTH: tf.io.FixedLenFeature([], tf.int64),
        features.MASK: tf.io.FixedLenFeature([], tf.string),
    }
    files = sorted(path for pattern in eval_files for path in tf.io.gfile.glob(pattern))
    slices = []
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size):
        parsed = {key: value.numpy() for key, value in tf.io.parse_example(serialized, spec).items()}
        sizes = list(zip(parsed[features.HEIGHT].tolist(), parsed[features.WIDTH].tolist()))
        for size in sorted(set(sizes)):  # one slice size per call
            indices = [i for i, other in enumerate(sizes) if other == size]
            probabilities = predict(tf.gather(serialized, indices))[PROBABILITIES].numpy()
            for i, slice_probabilities in zip(indices, probabilities):
                truth = np.frombuffer(parsed[features.MASK][i], np.uint8).reshape(size) > 0
                case_id = parsed[features.CASE_ID][i].decode()
                slices.append(postprocessing.EvalSlice(case_id, int(parsed[features.SLICE_INDEX][i]), truth, slice_probabilities))
    return slices


def choose_postprocessing(model: keras.Model, config: TrainingConfig, eval_files: list[str]) -> postprocessing.Choice:
    """The post-processing of the trained `model`, chosen on the eval split (never the test split):
    probabilities computed once, then core.postprocessing.choose post-processes them in numpy for the grid."""
    return postprocessing.choose(eval_split_slices(model, config, eval_files))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    config = TrainingConfig.from_dict(fn_args.custom_config["training"])
    weight = float((fn_args.hyperparameters or {}).get(POSITIVE_PIXEL_WEIGHT, 1.0))
    warm_start = config.warm_start  # an explicit path must exist: load_weights_from says so if not
    if warm_start == WARM_START_SERVED:  # the pipeline passes the served model as `base_model`
        warm_start = None
        if fn_args.base_model and tf.io.gfile.exists(os.path.join(fn_args.base_model, "saved_model.pb")):
            warm_start = fn_args.base_model
        else:
            logging.info("nothing pushed yet to warm-start from: training from scratch")
    backup_dir = backup_dir_for(fn_args, config, weight, warm_start)
    result = train(
        config,
        fn_args.train_files,
        fn_args.eval_files,
        weight,
        work_dir=fn_args.model_run_dir,
        log_dir=os.path.join(fn_args.model_run_dir, "logs"),
        initial_weights=warm_start,
        backup_dir=backup_dir,
    )
    logging.info("best epoch %d of %d", result.best_epoch, len(next(iter(result.history.values()), [])))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as out:
        history = {key: [float(value) for value in values] for key, values in result.history.items()}
        json.dump(
            {
                "best_epoch": result.best_epoch,
                "resumed_from_epoch": result.resumed_from_epoch,
                "monitor": result.monitor,
                "config": dataclasses.asdict(config),
                "history": history,
            },
            out,
        )
    spec, choice = postprocessing.PostProcessing(), None
    if config.postprocessing:
        choice = choose_postprocessing(result.model, config, fn_args.eval_files)
        spec = choice.spec
        logging.info("post-processing chosen on the eval split: %s", spec.describe())
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, POSTPROCESSING_FILE), "w") as out:
            json.dump(choice.to_dict(), out, indent=2)
    export_serving_model(result.model, config, fn_args.serving_model_dir, spec, choice)
    tf.io.gfile.rmtree(backup_dir)
