"""New model versions never mix with old vectors, on a stack of its own
(the shared one must keep version 1 for the other tests): `reelvec train encoder` fine-tunes on the
kept uploads, Triton serves the new version without a restart, the gateway re-embeds everything into
a new collection while searches keep answering, writes during the re-embed land in both, and the
alias switch leaves one collection of version 2 vectors. Then `reelvec train fusion` serves the
autoencoder fusion the same way, and a re-embed goes back to the default fusion.

The steps change one stack in turn, so each is a module fixture that asks for the step before it
and records what a test checks: the tests pass in any order, each seeing the state its step left.
"""

import json
import threading
import time
from types import SimpleNamespace

import grpc
import numpy as np
import pytest

from reelvec import samples
from reelvec.v1 import common_pb2, gateway_pb2
from tests.integration.conftest import stack_of_its_own

pytestmark = pytest.mark.integration

Status = gateway_pb2.ReembedStatus


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    yield from stack_of_its_own(tmp_path_factory, "versions")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("version-clips")
    return [samples.make_video(folder / f"clip{i}.mp4", seed=10 + i, seconds=3, audio=False) for i in range(12)]


def catalog(stack) -> dict:
    return json.loads((stack.data_dir / "search" / "catalog.json").read_text())


def visual(stub, video_id) -> tuple[np.ndarray, str]:
    record = stub.Get(gateway_pb2.GetVideoRequest(id=video_id, with_vectors=True), timeout=30)
    return np.asarray(record.embeddings.vectors["visual"].values), record.model_versions["visual"]


def wait_done(stub, timeout=300) -> gateway_pb2.ReembedStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = stub.GetReembed(gateway_pb2.GetReembedRequest(), timeout=10)
        if status.state in (Status.DONE, Status.FAILED):
            return status
        time.sleep(0.5)
    raise AssertionError(f"re-embed not done after {timeout}s: {status}")


def keep_searching(stub, query: bytes, errors: list, answered: list, stop: threading.Event) -> threading.Thread:
    """By id and by video until `stop`, in a thread: every answer's hit count, every error."""

    def run():
        while not stop.is_set():
            for request in (gateway_pb2.SearchRequest(id="clip1", k=3), gateway_pb2.SearchRequest(video=query, k=3)):
                try:
                    answered.append(len(stub.Search(request, timeout=60).hits))
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def searching_through(stub, query: bytes, step):
    """Runs step() while searches by id and by video go on; (step's result, errors, hit counts)."""
    errors, answered, stop = [], [], threading.Event()
    searcher = keep_searching(stub, query, errors, answered, stop)
    try:
        result = step()
    finally:
        stop.set()
        searcher.join(timeout=120)
    return result, errors, answered


@pytest.fixture(scope="module")
def encoder_trained(own_stack, clips):
    """Step 1: four clips indexed with version 1, then `reelvec train encoder` and its re-embed."""
    stub = own_stack.stub()
    own_stack.cli("index", *map(str, clips[:4]))
    before = visual(stub, "clip0")
    result, errors, answered = searching_through(stub, clips[5].read_bytes(), lambda: own_stack.cli(
        "train", "encoder", "--data-dir", str(own_stack.data_dir), "--steps", "4", "--batch", "4",
        "--lr", "1e-3", "--json"))
    after, state = visual(stub, "clip0"), catalog(own_stack)
    own_stack.cli("index", str(clips[4]))  # a new upload after the switch
    return SimpleNamespace(
        before=before, after=after, report=json.loads(result.stdout), errors=errors, answered=answered,
        state=state, v1_shard=(own_stack.data_dir / "search" / "edge" / "videos_v1").exists(),
        new_upload=visual(stub, "clip4")[1],
        hits=stub.Search(gateway_pb2.SearchRequest(video=clips[4].read_bytes(), k=1), timeout=60).hits)


def test_training_a_new_encoder_re_embeds_the_corpus_without_mixing_versions(encoder_trained):
    step = encoder_trained
    assert step.before[1] == "efficientnet_lite0:1"
    report = step.report
    assert report["videos"] == 4 and report["visual_version"] == 2 and report["reembed"] == "DONE", report
    assert step.errors == [] and len(step.answered) > 4 and min(step.answered) > 0

    assert step.after[1] == "efficientnet_lite0:2"
    assert float(step.before[0] @ step.after[0]) < 0.999  # re-embedded with the fine-tuned model
    state = step.state
    assert list(state["collections"]) == [state["active"]] and state["active"] != "videos_v1"
    assert state["collections"][state["active"]]["model_versions"]["visual"] == "efficientnet_lite0:2"
    assert not step.v1_shard

    # a new upload is embedded with the version the alias holds, and searches find it
    assert step.new_upload == "efficientnet_lite0:2"
    assert step.hits[0].id == "clip4" and step.hits[0].score > 0.99


@pytest.fixture(scope="module")
def back_to_version_1(encoder_trained, own_stack, clips):
    """Step 2: a re-embed back to version 1 with an Index and a Delete while it runs."""
    stub = own_stack.stub()
    # version 1 is still served: only versions no collection uses are removed after a switch, and
    # the packaged one stays
    started = stub.Reembed(gateway_pb2.ReembedRequest(visual_version="1"), timeout=60)
    own_stack.cli("index", str(clips[5]))
    stub.Delete(gateway_pb2.DeleteVideoRequest(id="clip3"), timeout=30)
    status = wait_done(stub)

    def code_of(call, request) -> grpc.StatusCode:
        try:
            call(request, timeout=60)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    return SimpleNamespace(
        started=started, status=status, clip5=visual(stub, "clip5")[1], collections=list(catalog(own_stack)["collections"]),
        deleted=code_of(stub.Get, gateway_pb2.GetVideoRequest(id="clip3")),
        again=code_of(stub.Reembed, gateway_pb2.ReembedRequest(visual_version="1")))  # already there


def test_writes_during_a_re_embed_reach_the_new_collection(back_to_version_1, own_stack, grpc_error):
    step, stub = back_to_version_1, own_stack.stub()
    assert step.started.state == Status.RUNNING and step.started.model_versions["visual"] == "efficientnet_lite0:1"
    status = step.status
    assert status.state == Status.DONE, status.error
    # the Delete of clip3 may wait on the write gate while the switch holds it, and then lands in the
    # new collection: the count at the switch is 5 or 6, and clip3 is gone either way (below)
    assert status.active == status.collection and status.done == status.total in (5, 6)
    assert step.clip5 == "efficientnet_lite0:1"
    assert step.deleted == grpc.StatusCode.NOT_FOUND
    assert step.collections == [status.active]
    assert step.again == grpc.StatusCode.FAILED_PRECONDITION

    # what cannot be done, whatever the step, says why, and nothing moves
    active = catalog(own_stack)["active"]
    refused = [
        ({}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"visual_version": "v2"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"fusion": "autoencoder-256-000000000000"}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"visual_version": "9"}, grpc.StatusCode.FAILED_PRECONDITION),
    ]
    for request, code in refused:
        error = grpc_error(stub.Reembed, gateway_pb2.ReembedRequest(**request), timeout=60)
        assert error.code() == code, (request, error.details())
    assert "9" in error.details() and "not served" in error.details()
    assert list(catalog(own_stack)["collections"]) == [active]


@pytest.fixture(scope="module")
def fusion_trained(back_to_version_1, own_stack, clips):
    """Step 3: `reelvec train fusion` on 11 videos, an upload with it, then back to the default."""
    stub = own_stack.stub()
    own_stack.cli("index", *map(str, clips[6:]))  # 11 videos: the fusion wants 10
    result, errors, answered = searching_through(stub, clips[7].read_bytes(), lambda: own_stack.cli(
        "train", "fusion", "--data-dir", str(own_stack.data_dir), "--json"))
    record = stub.Get(gateway_pb2.GetVideoRequest(id="clip4", with_vectors=True), timeout=30)
    state = catalog(own_stack)
    hits = stub.Search(gateway_pb2.SearchRequest(video=clips[4].read_bytes(), k=1), timeout=60).hits
    own_stack.cli("index", str(clips[3]))  # new uploads get it too
    uploaded = stub.Get(gateway_pb2.GetVideoRequest(id="clip3", with_vectors=True), timeout=30)
    back = json.loads(own_stack.cli("reembed", "--fusion", "weighted-concat-v1", "--wait", "--json").stdout)
    return SimpleNamespace(
        report=json.loads(result.stdout), errors=errors, answered=answered, record=record, state=state, hits=hits,
        uploaded=uploaded, back=back,
        after=stub.Get(gateway_pb2.GetVideoRequest(id="clip4", with_vectors=True), timeout=30))


def test_a_trained_fusion_is_served_as_the_fused_vector(fusion_trained):
    step = fusion_trained
    report = step.report
    assert report["videos"] == 11 and report["reembed"] == "DONE", report
    assert report["loss_last"] < report["loss_first"]
    assert step.errors == [] and min(step.answered) > 0

    assert len(step.record.embeddings.vectors["fused"].values) == 256
    assert step.record.model_versions["fused"] == report["fusion"]
    assert step.record.model_versions["visual"] == "efficientnet_lite0:1"
    assert step.state["collections"][step.state["active"]]["dims"]["fused"] == 256
    # a query is fused by the gateway exactly as the re-embed fused the stored vectors
    assert step.hits[0].id == "clip4" and step.hits[0].score > 0.999
    assert len(step.uploaded.embeddings.vectors["fused"].values) == 256

    assert step.back["state"] == "DONE"
    assert len(step.after.embeddings.vectors["fused"].values) == 1859
    assert step.after.model_versions["fused"] == "weighted-concat-v1"


def test_multimodal_training_serves_a_learned_audio_encoder(fusion_trained, own_stack, tmp_path):
    """The last step: it asks for the others so that the corpus it re-embeds is theirs."""
    stub = own_stack.stub()
    tones = [samples.make_video(tmp_path / f"tone{i}.mp4", seed=30 + i, seconds=3, tone_hz=220.0 * (i + 1))
             for i in range(4)]
    own_stack.cli("index", *map(str, tones))
    before = stub.Get(gateway_pb2.GetVideoRequest(id="tone0", with_vectors=True), timeout=30)
    assert before.model_versions["audio"] == "audio_stats:1"

    result = own_stack.cli("train", "encoder", "--multimodal", "--data-dir", str(own_stack.data_dir),
                           "--steps", "3", "--batch", "8", "--lr", "1e-3", "--json")
    report = json.loads(result.stdout)
    assert report["reembed"] == "DONE" and report["audio_version"] == 1, report
    assert np.isfinite(report["cross_modal_loss_last"])

    after = stub.Get(gateway_pb2.GetVideoRequest(id="tone0", with_vectors=True), timeout=30)
    assert after.model_versions["audio"] == "audio_logmel:1"
    assert after.model_versions["visual"] == f"efficientnet_lite0:{report['visual_version']}"
    learned = np.asarray(after.embeddings.vectors["audio"].values)
    assert learned.shape == (195,) and abs(float(learned @ np.asarray(before.embeddings.vectors["audio"].values))) < 0.99
    silent = stub.Get(gateway_pb2.GetVideoRequest(id="clip0", with_vectors=True), timeout=30)
    assert "audio" not in silent.embeddings.vectors  # no sound, no audio vector, learned or not
    hits = stub.Search(gateway_pb2.SearchRequest(video=tones[1].read_bytes(), k=1, modality=common_pb2.MODALITY_AUDIO), timeout=60).hits
    assert hits[0].id == "tone1" and hits[0].score > 0.99  # the query's audio went through the same version

    back = json.loads(own_stack.cli("reembed", "--audio-version", "stats", "--wait", "--json").stdout)
    assert back["state"] == "DONE"
    again = stub.Get(gateway_pb2.GetVideoRequest(id="tone0", with_vectors=True), timeout=30)
    assert again.model_versions["audio"] == "audio_stats:1"
    assert np.allclose(again.embeddings.vectors["audio"].values, before.embeddings.vectors["audio"].values, atol=1e-5)
