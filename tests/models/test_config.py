import pytest

from models.config import TrainingConfig, testing_config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(model="segnet"), "model must be one of"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(n_filters=12), "n_filters must be one of"),
        (dict(dropout_rate=1.0), "dropout_rate"),
        (dict(image_size=100), "multiple of 2\\*\\*depth=16"),
        (dict(prune_level=2), "prune_level needs model='unetpp'"),
        (dict(model="unetpp", prune_level=2), "prune_level needs"),
        (dict(model="unetpp", deep_supervision=True, prune_level=5), "prune_level needs"),
        (dict(deep_supervision=True), "deep_supervision is a UNet\\+\\+ option"),
        (dict(tumor_slice_fraction=1.0), "tumor_slice_fraction"),
        (dict(hard_negative_fraction=1.0), "hard_negative_fraction must be in \\[0, 1\\), got 1.0"),
        (dict(hard_negative_fraction=-0.1), "hard_negative_fraction must be in"),
        (dict(hard_negative_fraction=0.5, tumor_slice_fraction=0.0), "hard_negative_fraction needs oversampling"),
        (dict(patch_size=100), "patch_size must be a multiple of 2\\*\\*depth=16"),
        (dict(patch_size=256), "at most image_size=128, got 256"),
        (dict(tumor_patch_fraction=1.5), "tumor_patch_fraction must be in"),
        (dict(inference_window=72), "inference_window must be a multiple"),
        (dict(selection_metric="empty_slice_fp_rate"), "selection_metric must be one of"),
        (dict(min_steps_per_epoch=0), "min_steps_per_epoch must be >= 1, got 0"),
        (dict(positive_weight_exponent=1.5), "positive_weight_exponent must be in \\[0, 1\\], got 1.5"),
        (dict(background_structures=1.5), "background_structures must be in \\[0, 1\\], got 1.5"),
        (dict(background_structures=0.5, augment=False), "background_structures is an augmentation"),
        (dict(synthetic_lesions=1.5), "synthetic_lesions must be in \\[0, 1\\], got 1.5"),
        (dict(synthetic_lesions=0.5, augment=False), "synthetic_lesions is an augmentation"),
        (dict(coil_shading=-0.1), "coil_shading is a standard deviation \\(>= 0\\), got -0.1"),
        (dict(coil_shading=0.3, augment=False), "coil_shading is an augmentation"),
        (dict(deterministic=True, hard_negative_fraction=0.5), "deterministic training cannot draw hard negatives"),
    ],
)
def test_invalid_options_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**kwargs)


def test_round_trip_and_unknown_keys():
    config = testing_config(model="unetpp", deep_supervision=True, prune_level=1)
    import json

    assert TrainingConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="unknown training options"):
        TrainingConfig.from_dict({"epochs": 2, "epoch": 3})


@pytest.mark.parametrize(
    "slices, batch_size, min_steps, steps",
    [
        (500, 32, 15, 15),  # the embedded data's train split: one pass, as before the minimum
        (220, 32, 15, 15),  # 11 train cases of 20 slices: 6 steps a pass, raised to the minimum
        (3000, 32, 15, 93),  # a large split: one pass (3000 // 32)
        (7, 8, 1, 1),
    ],
)
def test_an_epoch_is_one_pass_but_at_least_the_minimum_steps(slices, batch_size, min_steps, steps):
    assert TrainingConfig(batch_size=batch_size, min_steps_per_epoch=min_steps).steps_per_epoch(slices) == steps


@pytest.mark.parametrize(
    "exponent, ratio, weight",
    [
        (1.0, 119.5, 119.5),  # balanced classes: the pipeline's ratio as it is
        (0.5, 625.0, 25.0),
        (0.5, 4.0, 2.0),
        (0.0, 625.0, 1.0),  # the unweighted loss
    ],
)
def test_the_tumor_pixel_weight_is_the_ratio_to_the_exponent(exponent, ratio, weight):
    assert TrainingConfig(positive_weight_exponent=exponent).tumor_pixel_weight(ratio) == pytest.approx(weight)
