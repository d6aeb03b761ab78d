import os

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
