import os
import tempfile

import pytest

from components import pusher_executor


def _model(folder) -> str:
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights" * 1000)
    return str(folder)


def test_push_lands_complete_under_a_new_version_and_cleans_a_killed_push(tmp_path):
    model = _model(tmp_path / "model")
    serving = tmp_path / "serving"
    (serving / ".123.partial" / "variables").mkdir(parents=True)  # what a push killed mid-copy leaves
    first = pusher_executor.push_atomically(model, str(serving))
    second = pusher_executor.push_atomically(model, str(serving))
    assert int(os.path.basename(second)) > int(os.path.basename(first))
    assert sorted(os.listdir(serving)) == sorted([os.path.basename(first), os.path.basename(second)])
    assert pusher_executor.tree_digest(first) == pusher_executor.tree_digest(model) == pusher_executor.tree_digest(second)


def test_a_failed_copy_leaves_no_version_folder(tmp_path, monkeypatch):
    model = _model(tmp_path / "model")
    serving = tmp_path / "serving"

    def copy_then_die(source, destination):
        os.makedirs(destination)
        raise OSError("disk full")

    monkeypatch.setattr(pusher_executor.shutil, "copytree", copy_then_die)
    with pytest.raises(OSError, match="disk full"):
        pusher_executor.push_atomically(model, str(serving))
    assert [name for name in os.listdir(serving) if not name.startswith(".")] == []


def _push(model_dir: str, serving_dir: str, blessed: bool):
    """Run the executor's `Do` as TFX would, on tiny artifacts; returns the PushedModel artifact."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    model = standard_artifacts.Model()
    model.uri = model_dir
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(os.path.dirname(serving_dir), "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = tempfile.mkdtemp(prefix="pushed_model_", dir=os.path.dirname(serving_dir))  # one per execution
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir))
    pusher_executor.Executor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )
    return pushed


def _trainer_output(folder) -> str:
    """A Model artifact folder as the Trainer writes it: the SavedModel under Format-Serving."""
    _model(folder / "Format-Serving")
    return str(folder)


def _versions(serving) -> list[str]:
    return sorted(name for name in os.listdir(serving) if not name.startswith(".")) if os.path.isdir(serving) else []


def test_do_pushes_nothing_for_a_model_that_is_not_blessed(tmp_path):
    serving = tmp_path / "serving"
    pushed = _push(_trainer_output(tmp_path / "model"), str(serving), blessed=False)
    assert _versions(serving) == []
    assert pushed.get_int_custom_property("pushed") == 0


def test_do_pushes_a_blessed_model_once_and_records_an_identical_repush_as_that_push(tmp_path):
    serving = tmp_path / "serving"
    model = _trainer_output(tmp_path / "model")
    first = _push(model, str(serving), blessed=True)
    [version] = _versions(serving)
    assert first.get_int_custom_property("pushed") == 1
    assert first.get_string_custom_property("pushed_destination") == str(serving / version)
    assert first.get_string_custom_property("pushed_version") == version
    assert pusher_executor.tree_digest(str(serving / version)) == pusher_executor.tree_digest(os.path.join(model, "Format-Serving"))

    again = _push(model, str(serving), blessed=True)  # a rerun with a cached Trainer: the same files
    assert _versions(serving) == [version]
    assert again.get_int_custom_property("pushed") == 1
    assert again.get_string_custom_property("pushed_destination") == str(serving / version)

    (tmp_path / "model" / "Format-Serving" / "saved_model.pb").write_bytes(b"another graph")  # a new model
    _push(model, str(serving), blessed=True)
    assert len(_versions(serving)) == 2 and version in _versions(serving)


def test_latest_version_is_the_numerically_newest_complete_version(tmp_path):
    from components.latest_pushed_model import latest_version_dir

    serving = tmp_path / "serving"
    assert latest_version_dir(str(serving)) is None  # nothing pushed yet
    for version in ("9", "10", "100"):
        _model(serving / version)
    (serving / "200" / "variables").mkdir(parents=True)  # a version without saved_model.pb: incomplete
    _model(serving / "999abc")  # not a version
    _model(serving / ".300.partial")  # a push in progress
    assert latest_version_dir(str(serving)) == str(serving / "100")
    assert latest_version_dir(str(tmp_path / "empty")) is None
