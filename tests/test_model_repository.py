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


def test_a_visual_version_trained_before_the_descriptor_head_gets_one(tmp_path):
    """A version exported by an older release gives the embedding alone; the config now also names
    the descriptor, so the stack's repository gives it the head, fitted with its own features (here
    the packaged graph with its head cut off: the same features, so the same descriptors)."""
    trained = _trained_without(tmp_path, lambda name: name.startswith("descriptor"))

    model_repository.assemble(tmp_path / "prepared", tmp_path / "served")

    _serves_the_packaged_head(trained / "model.onnx")
    before = (trained / "model.onnx").stat().st_mtime_ns
    model_repository.assemble(tmp_path / "prepared", tmp_path / "served")  # once: it has a head now
    assert (trained / "model.onnx").stat().st_mtime_ns == before


def test_a_visual_version_with_a_head_but_not_its_id_gets_the_id(tmp_path):
    """Exported between the descriptor head and its id: the same whitening, now named."""
    trained = _trained_without(tmp_path, lambda name: name.startswith("descriptor_head"))

    model_repository.assemble(tmp_path / "prepared", tmp_path / "served")

    _serves_the_packaged_head(trained / "model.onnx", same_id=True)


def _packaged():
    from reelvec.models import VISUAL_MODEL_NAME, triton_repository

    return triton_repository() / VISUAL_MODEL_NAME / "1" / "model.onnx"


def _trained_without(tmp_path, cut):
    """Version 2 of the visual model: the packaged graph without the nodes, initializers and
    outputs whose names `cut` picks, as an older release exported it."""
    import onnx

    from reelvec.models import VISUAL_MODEL_NAME

    proto = onnx.load(str(_packaged()))
    kept = [n for n in proto.graph.node if not any(cut(name) for name in (*n.input, *n.output))]
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    for field in (proto.graph.initializer, proto.graph.output):
        survivors = [item for item in field if not cut(item.name)]
        del field[:]
        field.extend(survivors)
    (tmp_path / "prepared" / VISUAL_MODEL_NAME / "1").mkdir(parents=True)
    (tmp_path / "prepared" / VISUAL_MODEL_NAME / "config.pbtxt").write_text("config")
    trained = tmp_path / "served" / VISUAL_MODEL_NAME / "2"
    trained.mkdir(parents=True)
    onnx.save(proto, str(trained / "model.onnx"))
    return trained


def _serves_the_packaged_head(path, same_id=False):
    """Fitted with the packaged graph's own features: the same descriptors, one head id a row
    (with `same_id`, the packaged head's: the same whitening, only named)."""
    import numpy as np
    import onnxruntime as ort

    frames = np.random.default_rng(5).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    names = ["embedding", "descriptor", "descriptor_head"]
    upgraded = ort.InferenceSession(str(path)).run(names, {"frames": frames})
    expected = ort.InferenceSession(str(_packaged())).run(names, {"frames": frames})
    for got, want in zip(upgraded[:2], expected[:2]):
        np.testing.assert_allclose(got, want, atol=1e-3)
    assert upgraded[2].shape == (3, 1) and len(set(upgraded[2].ravel())) == 1
    assert not same_id or (upgraded[2] == expected[2]).all()
