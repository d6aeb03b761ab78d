import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import networks
from models.config import testing_config
from models.export import export_serving_model
from models.trainer_module import load_weights_from
from tests.helpers import write_examples


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = testing_config(dropout_rate=0.0)
    model = networks.build_model(config)
    directory = str(tmp_path_factory.mktemp("export") / "model")
    export_serving_model(model, config, directory)
    return model, config, directory


def test_loads_in_a_fresh_process_without_this_project(exported, tmp_path):
    _, _, directory = exported
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({directory!r})
        out = model.signatures["predict_images"](images=tf.zeros([2, 300, 200, 3], tf.uint8))
        print(out["probabilities"].shape, out["mask"].dtype.name)
    """)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(2, 300, 200) uint8"


def test_signatures_match_the_keras_model(exported, tiny_dataset, tmp_path):
    model, config, directory = exported
    loaded = tf.saved_model.load(directory)
    pattern = write_examples(tiny_dataset, str(tmp_path))
    serialized = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP").batch(2)))
    from_examples = loaded.signatures["serving_default"](examples=serialized)
    from models.input_pipeline import parse_examples

    images, _ = parse_examples(serialized)
    from_images = loaded.signatures["predict_images"](images=images)
    np.testing.assert_allclose(from_examples["probabilities"].numpy(), from_images["probabilities"].numpy(), atol=1e-6)
    assert from_images["probabilities"].shape == (2, 256, 256)
    # Same as resizing, calling the Keras model, resizing back and applying the sigmoid by hand.
    resized = tf.image.resize(tf.cast(images, tf.float32), [config.image_size] * 2, method="area")
    expected = tf.sigmoid(tf.image.resize(model(resized), [256, 256])[..., 0])
    np.testing.assert_allclose(from_images["probabilities"].numpy(), expected.numpy(), atol=1e-5)
    decided = np.abs(expected.numpy() - 0.5) > 1e-4  # an untrained network sits near 0.5: float noise may flip those pixels
    np.testing.assert_array_equal(from_images["mask"].numpy()[decided], (expected.numpy() > 0.5).astype(np.uint8)[decided])


@pytest.mark.parametrize(
    "images, message",
    [
        (tf.zeros([1, 32, 32, 3], tf.float32), "expected to be a uint8 tensor but is a float tensor"),
        (tf.zeros([1, 32, 32, 3], tf.int32), "expected to be a uint8 tensor but is a int32 tensor"),
        (tf.zeros([32, 32, 3], tf.uint8), r"tensor images \[32,32,3\] is not compatible with expected shape \[\?,\?,\?,3\]"),
        (tf.zeros([1, 1, 32, 32, 3], tf.uint8), r"tensor images \[1,1,32,32,3\] is not compatible with expected shape"),
        (tf.zeros([1, 32, 32, 1], tf.uint8), r"tensor images \[1,32,32,1\] is not compatible with expected shape \[\?,\?,\?,3\]"),
        (tf.zeros([1, 32, 32, 4], tf.uint8), r"tensor images \[1,32,32,4\] is not compatible with expected shape"),
        (tf.zeros([0, 32, 32, 3], tf.uint8), "at least one slice"),
    ],
    ids=["float32", "int32", "rank 3", "rank 5", "1 channel", "4 channels", "empty batch"],
)
def test_predict_images_rejects_wrong_inputs_with_a_clear_error(exported, images, message):
    predict = tf.saved_model.load(exported[2]).signatures["predict_images"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        predict(images=images)


@pytest.mark.parametrize(
    "examples, message",
    [
        (tf.zeros([2], tf.float32), "string tensor"),
        (tf.constant([[b"x"]]), r"tensor examples \[1,1\] is not compatible with expected shape \[\?\]"),
    ],
)
def test_serving_default_rejects_wrong_inputs_with_a_clear_error(exported, examples, message):
    serve = tf.saved_model.load(exported[2]).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(examples=examples)


@pytest.mark.parametrize("height, width", [(1, 1), (17, 255), (512, 384)])
def test_predict_images_accepts_any_height_and_width(exported, height, width):
    predict = tf.saved_model.load(exported[2]).signatures["predict_images"]
    out = predict(images=tf.zeros([2, height, width, 3], tf.uint8))
    assert out["probabilities"].shape == out["mask"].shape == (2, height, width) and out["mask"].dtype == tf.uint8


def test_batch_norm_statistics_are_trained_and_survive_export(tmp_path):
    config = testing_config(dropout_rate=0.0)
    model = networks.build_model(config)
    batch_norm = model.get_layer("x0_0_bn1")
    before = batch_norm.moving_mean.numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(images, np.zeros((8, 32, 32, 1), "float32"), epochs=2, verbose=0)
    after = batch_norm.moving_mean.numpy()
    assert not np.allclose(before, after)
    directory = str(tmp_path / "model")
    export_serving_model(model, config, directory)
    fresh = networks.build_model(config)
    load_weights_from(fresh, directory)
    np.testing.assert_allclose(fresh.get_layer("x0_0_bn1").moving_mean.numpy(), after)
    np.testing.assert_allclose(fresh(images[:2]).numpy(), model(images[:2]).numpy(), atol=1e-4)


def test_tta_signature_is_the_mean_of_the_four_flips(exported):
    model, config, directory = exported
    loaded = tf.saved_model.load(directory)
    images = tf.constant(np.random.default_rng(0).integers(0, 255, (2, 48, 40, 3)), tf.uint8)
    resized = tf.image.resize(tf.cast(images, tf.float32), [config.image_size] * 2, method="area")
    flips = [(), (2,), (1,), (1, 2)]
    mean = sum(tf.reverse(tf.sigmoid(model(tf.reverse(resized, axes))), axes) for axes in flips) / 4
    logits = tf.math.log(mean) - tf.math.log(1 - mean)
    expected = tf.sigmoid(tf.image.resize(logits, [48, 40])[..., 0])
    out = loaded.signatures["predict_images_tta"](images=images)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected.numpy(), atol=1e-5)
    plain = loaded.signatures["predict_images"](images=images)["probabilities"].numpy()
    assert np.abs(out["probabilities"].numpy() - plain).max() > 1e-4  # flips change an untrained network's output


def test_a_model_with_an_inference_window_tiles_and_loads(tmp_path):
    config = testing_config(image_size=64, inference_window=32, dropout_rate=0.0)
    directory = str(tmp_path / "tiled")
    export_serving_model(networks.build_model(config), config, directory)
    loaded = tf.saved_model.load(directory)
    for name in ("predict_images", "predict_images_tta"):
        out = loaded.signatures[name](images=tf.zeros([1, 100, 90, 3], tf.uint8))
        assert out["mask"].shape == (1, 100, 90)


def test_a_tiled_model_gives_the_sliding_window_probabilities_of_its_network(tmp_path):
    """At the training size no resizing happens: the export must equal models.patches on the same network."""
    from models.patches import sliding_window_probabilities

    config = testing_config(image_size=64, inference_window=32, dropout_rate=0.0)
    model = networks.build_model(config)
    directory = str(tmp_path / "tiled")
    export_serving_model(model, config, directory)
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    exported = tf.saved_model.load(directory).signatures["predict_images"](images=tf.constant(images))["probabilities"].numpy()
    expected = sliding_window_probabilities(model, tf.constant(images, tf.float32), window=32).numpy()[..., 0]
    np.testing.assert_allclose(exported, expected, atol=1e-5)
    whole = tf.sigmoid(model(images.astype(np.float32), training=False)).numpy()[..., 0]
    assert np.abs(expected - whole).max() > 1e-4  # tiling matters here, so the comparison above can fail


def test_the_mask_output_is_the_post_processed_probabilities_and_the_info_file_names_it(tmp_path):
    import json

    from core import contracts, postprocessing
    from tests.helpers import export_red_channel_model

    spec = postprocessing.PostProcessing(threshold=0.6, min_component_pixels=6)
    directory = str(tmp_path / "model")
    export_red_channel_model(directory, image_size=32, spec=spec)
    images = np.zeros((2, 40, 36, 3), np.uint8)
    images[0, 2:6, 2:6, 0] = 255  # 16 pixels: kept
    images[0, 20:22, 20:22, 0] = 255  # 4 pixels: removed
    images[1, 10:12, 30:33, 0] = 255  # 6 pixels: kept (the minimum is inclusive)
    images[1, 30, 5, 0] = 255  # 1 pixel: removed
    loaded = tf.saved_model.load(directory)
    for name in ("predict_images", "predict_images_tta"):
        out = loaded.signatures[name](images=tf.constant(images))
        probabilities, mask = out["probabilities"].numpy(), out["mask"].numpy()
        np.testing.assert_array_equal(mask, postprocessing.apply(probabilities, spec))
        assert mask.sum() < (probabilities > 0.5).sum()  # the post-processing changed the masks
    assert mask.sum() == 16 + 6 and probabilities.max() > 0.99  # `probabilities` stays the raw network output
    with open(os.path.join(directory, contracts.MODEL_INFO_DIR, contracts.MODEL_INFO_FILE)) as info:
        assert json.load(info)[contracts.INFO_POSTPROCESSING] == {"threshold": 0.6, "min_component_pixels": 6}
