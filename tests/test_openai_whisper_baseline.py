"""The openai-whisper baseline of bench/transcription.py: our CTranslate2 Whisper weights read from
model.bin and converted into openai-whisper's model. The reader and the conversion need only numpy and
always run; loading and running the converted model needs the optional openai-whisper install."""

import shutil
import struct

import numpy as np
import pytest

from bench import transcription
from bench.baselines import openai_whisper
from reelvec import media, samples
from reelvec.models import whisper

SPOKEN = (
    "Hello everyone, this is a short video about my morning routine. "
    "First I drink a glass of water, then I go for a run in the park."
)
# Parameters of OpenAI's own checkpoints (sum of numel over Whisper(dims).parameters()).
PARAMETERS = {"tiny.en": 37_184_256, "base": 71_825_920}
TINY_EN = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
           "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4}

needs_openai = pytest.mark.skipif(
    not openai_whisper.available(),
    reason=f"openai-whisper is an optional extra (not installed); install it with: {openai_whisper.INSTALL}",
)


@pytest.fixture(scope="module")
def tiny_variables():
    return openai_whisper.read_model_bin(whisper.model_dir("tiny.en") / "model.bin")


def test_reader_reads_tiny_en_model_bin(tiny_variables):
    v = tiny_variables
    assert v["encoder/conv1/weight"].shape == (384, 80, 3)
    assert v["encoder/conv1/weight"].dtype == np.float16  # how the package ships it
    assert v["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)  # fused q, k, v
    assert v["decoder/layer_3/attention/linear_1/weight"].shape == (2 * 384, 384)  # fused cross k, v
    assert v["decoder/embeddings/weight"].shape == (51864, 384)
    assert v["decoder/position_encodings/encodings"].shape == (448, 384)
    assert int(v["encoder/num_heads"]) == 6 and v["encoder/num_heads"].shape == ()
    # the output projection is stored as an alias of the token embedding
    assert v["decoder/projection/weight"] is v["decoder/embeddings/weight"]
    assert np.isfinite(v["encoder/layer_norm/gamma"].astype(np.float32)).all()


def test_reader_rejects_other_binary_versions(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<I", 5) + b"\0" * 16)
    with pytest.raises(ValueError, match="version 5"):
        openai_whisper.read_model_bin(path)


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_conversion_has_openai_names_shapes_and_parameter_count(name):
    try:
        source = whisper.model_dir(name) / "model.bin"
    except FileNotFoundError as error:
        pytest.skip(str(error))
    variables = openai_whisper.read_model_bin(source)
    dims = openai_whisper.dimensions(variables)
    if name == "tiny.en":
        assert dims == TINY_EN
    state = openai_whisper.convert(variables)
    state_d = dims["n_text_state"]
    assert state["decoder.blocks.0.cross_attn.key.weight"].shape == (state_d, state_d)
    assert "decoder.blocks.0.cross_attn.key.bias" not in state  # openai's key has no bias
    assert state["encoder.blocks.0.mlp.0.weight"].shape == (4 * dims["n_audio_state"], dims["n_audio_state"])
    buffers = {"encoder.positional_embedding"}
    assert sum(v.size for k, v in state.items() if k not in buffers) == PARAMETERS[name]


def test_int8_weights_are_dequantized_per_output_row():
    weight = np.array([[127, -64], [10, 20]], np.int8)
    scale = np.array([127 / 2.0, 127 / 0.5], np.float32)  # what CTranslate2 stores: 127 / row max
    got = openai_whisper._float({"w": weight, "w_scale": scale}, "w")
    np.testing.assert_allclose(got, [[2.0, -64 * 2 / 127], [10 * 0.5 / 127, 20 * 0.5 / 127]], rtol=1e-6)


# --- the converted model in openai-whisper ------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Converts into a temporary cache, so the test proves the conversion rather than reusing one."""
    saved = openai_whisper.CACHE_DIR
    openai_whisper.CACHE_DIR = tmp_path_factory.mktemp("openai-whisper")
    yield openai_whisper.CACHE_DIR
    openai_whisper.CACHE_DIR = saved


@pytest.fixture(scope="module")
def tiny(cache):
    return openai_whisper.load("tiny.en")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make system-deps)")
    video = samples.make_video(tmp_path_factory.mktemp("clip") / "speech.mp4", speech=SPOKEN)
    return media.decode_audio(video.read_bytes())


@needs_openai
def test_converted_model_has_the_dims_and_parameters(tiny, cache):
    assert tiny.dims.__dict__ == TINY_EN
    assert sum(p.numel() for p in tiny.parameters()) == PARAMETERS["tiny.en"]
    # openai-whisper's own loader reads the cached checkpoint too
    import whisper as openai

    path = openai_whisper.checkpoint_path("tiny.en")
    assert path.parent == cache
    assert openai.load_model(str(path), device="cpu").dims == tiny.dims


@needs_openai
def test_converted_model_computes_what_ctranslate2_computes(tiny, speech):
    """Same encoder output and the same greedy tokens as CTranslate2 float32 on the same weights."""
    import ctranslate2
    import torch
    import whisper as openai
    from whisper.tokenizer import get_tokenizer

    mel = openai.log_mel_spectrogram(openai.pad_or_trim(speech))[None]
    reference = ctranslate2.models.Whisper(str(whisper.model_dir("tiny.en")), compute_type="float32")
    features = ctranslate2.StorageView.from_array(mel.numpy())
    with torch.inference_mode():
        encoded = tiny.encoder(mel).numpy()
    np.testing.assert_allclose(encoded, np.array(reference.encode(features, to_cpu=True)), atol=1e-3)

    tokenizer = get_tokenizer(False, language="en", task="transcribe")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)
    theirs = reference.generate(features, [prompt], beam_size=1)[0].sequences_ids[0]
    ours = openai.decode(tiny, mel[0], openai.DecodingOptions(language="en", without_timestamps=True, fp16=False))
    assert ours.tokens == [t for t in theirs if t < tokenizer.eot]


@needs_openai
def test_converted_model_transcribes_speech_like_faster_whisper(tiny, speech):
    from faster_whisper import WhisperModel

    ours = tiny.transcribe(speech, language="en", beam_size=5, fp16=False, verbose=None)["text"]
    fast = WhisperModel(str(whisper.model_dir("tiny.en")), compute_type="float32", local_files_only=True)
    theirs = " ".join(s.text for s in fast.transcribe(speech, language="en", beam_size=5)[0])
    wer = lambda ref, hyp: transcription.word_error_rate([ref], [hyp])  # noqa: E731
    assert wer(SPOKEN, ours) < 0.15, ours
    assert wer(theirs, ours) <= 0.1, (ours, theirs)  # beam search details may differ by a word
