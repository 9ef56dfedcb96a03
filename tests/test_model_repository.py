"""The Triton repository a stack serves: prepared versions linked, trained ones kept."""

import shutil

from reelvec import model_repository


def test_assemble_links_prepared_versions_and_follows_a_moved_models_dir(tmp_path):
    for where in ("old", "new"):
        (tmp_path / where / "m" / "1").mkdir(parents=True)
        (tmp_path / where / "m" / "config.pbtxt").write_text(where)
    served = tmp_path / "served"
    model_repository.assemble(tmp_path / "old", served)
    assert (served / "m" / "1").resolve() == (tmp_path / "old" / "m" / "1").resolve()
    (served / "m" / "2").mkdir()  # a version trained on this stack's videos
    shutil.rmtree(tmp_path / "old")

    model_repository.assemble(tmp_path / "new", served)

    assert (served / "m" / "1").resolve() == (tmp_path / "new" / "m" / "1").resolve()
    assert (served / "m" / "config.pbtxt").read_text() == "new"
    assert (served / "m" / "2").is_dir() and not (served / "m" / "2").is_symlink()
    assert model_repository.next_version(served, "m") == 3


def test_a_trained_version_gets_this_releases_python_backend(tmp_path):
    (tmp_path / "prepared" / "m" / "1").mkdir(parents=True)
    (tmp_path / "prepared" / "m" / "config.pbtxt").write_text("config")
    trained = tmp_path / "served" / "audio" / "3"
    trained.mkdir(parents=True)
    (trained / "model.py").write_text("# the backend of an older release\n")
    (trained / "model.onnx").write_bytes(b"weights")

    model_repository.assemble(tmp_path / "prepared", tmp_path / "served")

    assert (trained / "model.py").read_bytes() == model_repository.PYTHON_BACKEND.read_bytes()
    assert (trained / "model.onnx").read_bytes() == b"weights"
