"""Speech-to-text with faster-whisper (CTranslate2) from a local model directory."""

import asyncio
import dataclasses
import os
import threading

import ctranslate2
import numpy as np
import prometheus_client
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.transcribe import restore_speech_timestamps
from faster_whisper.vad import VadOptions, get_speech_timestamps

from reelvec.models import base, whisper
from services.transcriber import packing
from services.transcriber.packing import SAMPLE_RATE

# The encoder pass is the fixed cost of a window however little speech it holds: windows per
# transcription is what packing saves (below 1 when clips share windows).
WINDOWS = prometheus_client.Counter("reelvec_whisper_windows", "Whisper encoder passes over a 30 s window")


@dataclasses.dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclasses.dataclass(frozen=True)
class Transcript:
    text: str = ""
    language: str = ""  # empty when there is no speech
    language_probability: float = 0.0
    segments: tuple[Segment, ...] = ()

    @classmethod
    def of(cls, segments: tuple[Segment, ...], language: str, probability: float) -> "Transcript":
        """The transcript of these segments; empty (no language either) when there are none."""
        if not segments:
            return cls()
        return cls(" ".join(s.text for s in segments), language, probability, segments)


def default_compute_type(device: str) -> str:
    # int8 is the fastest CPU path; CUDA's tensor cores want float16.
    return "float16" if device == "cuda" else "int8"


class _SharedEncodingWhisper(WhisperModel):
    """transcribe() without a language encodes the first 30 s window twice: once to detect the
    language, once to decode it. Each thread keeps its last encoding, so the second is free: for a
    short clip the encoder is most of the work (a 5 s clip took 1.44 s, 0.89 s with the language
    given). Reuse needs the very same input, so a change upstream costs speed, never correctness."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last = threading.local()

    def detect_language(self, audio=None, features=None, **kwargs):
        if features is not None and features.shape[-1] > 1:  # one frame: the VAD kept nothing
            # decoding leaves out the feature extractor's last frame: detect on the same window
            features = features[..., :-1]
        return super().detect_language(audio, features, **kwargs)

    def encode(self, features):
        last, self._last.value = getattr(self._last, "value", None), None
        if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
            return last[1]
        output = super().encode(features)
        WINDOWS.inc()
        self._last.value = (features, output)
        return output


def default_cpu_threads(workers: int) -> int:
    """One thread per worker, cores shared out: on 2 cores two 1-thread transcriptions at once got
    1.8x the throughput of one 2-thread transcription at a time (docs/transcriber.md)."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers))


class Speech(base.Model):
    """predict: a list of 16 kHz mono float32 clips (None: no audio) in, a Transcript each out."""

    def __init__(
        self,
        name: str = "base",
        device: str = "cpu",
        compute_type: str = "",
        cpu_threads: int = 0,
        workers: int = 1,
        beam_size: int = 5,
    ):
        compute_type = compute_type or default_compute_type(device)
        self.name = f"faster-whisper:{name}:{compute_type}"
        self.beam_size = beam_size
        self._on_gpu = device == "cuda"
        # Without num_workers > 1, CTranslate2 runs concurrent calls one after another.
        self._whisper = name
        self._options = dict(device=device, compute_type=compute_type,
                             cpu_threads=cpu_threads or default_cpu_threads(workers), num_workers=workers,
                             local_files_only=True)
        self.model: _SharedEncodingWhisper | None = None

    async def load(self, timeout: float = 0.0) -> None:
        directory = str(whisper.model_dir(self._whisper))
        self.model = await asyncio.to_thread(_SharedEncodingWhisper, directory, **self._options)

    async def predict(self, batch: list[np.ndarray | None]) -> list[Transcript]:
        return await asyncio.to_thread(self.transcribe_many, batch)

    def transcribe_many(self, audios: list[np.ndarray | None]) -> list[Transcript]:
        """predict's work, in the calling thread. No audio, or nothing the VAD calls speech, is an
        empty Transcript; clips short enough are packed into shared windows (packing.py)."""
        results: list[Transcript | None] = [None] * len(audios)
        clips = []
        for index, audio in enumerate(audios):
            # The VAD drops silence and noise before decoding: Whisper alone hallucinates words there.
            chunks = get_speech_timestamps(audio, VadOptions()) if audio is not None and audio.size else []
            clip = packing.Clip(index, audio, chunks)
            if not chunks:
                results[index] = Transcript()
            elif clip.speech_s > packing.WINDOW_S - packing.GAP_S:
                results[index] = self._transcribe_alone(clip)
            else:
                clips.append(clip)
        for pack in packing.packs(clips):
            together = self._transcribe_pack(pack) if len(pack) > 1 else None
            for clip in pack:
                results[clip.index] = together[clip.index] if together else self._transcribe_alone(clip)
        return results

    def _transcribe_alone(self, clip: packing.Clip) -> Transcript:
        """The clip's speech, language detected on it: what faster-whisper's transcribe() does with
        vad_filter=True, from the VAD's chunks already found."""
        speech, _ = packing.lay_out([clip])
        pieces, info = self.model.transcribe(speech, beam_size=self.beam_size, vad_filter=False)
        duration = clip.audio.size / SAMPLE_RATE
        segments = tuple(
            # Timestamp tokens are quantized to 20 ms and can overshoot the last window.
            Segment(min(p.start, duration), min(p.end, duration), p.text.strip())
            for p in restore_speech_timestamps(pieces, clip.chunks, SAMPLE_RATE)
            if p.text.strip()
        )
        return Transcript.of(segments, info.language, float(info.language_probability))

    def _transcribe_pack(self, pack: list[packing.Clip]) -> dict[int, Transcript] | None:
        """None when the clips' languages differ: each is then transcribed alone."""
        audio, placed = packing.lay_out(pack)
        languages = self._languages(audio, placed)
        if len({language for language, _ in languages}) != 1:
            return None
        pieces, _ = self.model.transcribe(audio, language=languages[0][0], beam_size=self.beam_size,
                                          vad_filter=False, word_timestamps=True)
        runs = packing.split(pieces, placed)
        out = {}
        for p, (language, probability) in zip(placed, languages):
            segments = tuple(Segment(r.start, r.end, r.text) for r in runs[p.clip.index])
            out[p.clip.index] = Transcript.of(segments, language, probability)
        return out

    def _languages(self, audio: np.ndarray, placed: list[packing.Placed]) -> list[tuple[str, float]]:
        """Each clip's language, from its own stretch of the window's encoding. The window is cut
        as transcribe() cuts its first one, so that transcribe() reuses this encoding."""
        if not self.model.model.is_multilingual:
            return [("en", 1.0)] * len(placed)
        features = self.model.feature_extractor(audio)
        window = pad_or_trim(features[:, : features.shape[-1] - 1][:, : self.model.feature_extractor.nb_max_frames])
        encoding = self.model.encode(window)
        if self._on_gpu:  # the encoding stays on the GPU, where numpy cannot read it
            encoding = encoding.to_device(ctranslate2.Device.cpu)
        encoding = np.asarray(encoding)
        silence_from = int(np.ceil(placed[-1].end * packing.ENCODER_FRAMES_PER_S))
        out = []
        for p in placed:
            own = ctranslate2.StorageView.from_array(p.encoded(encoding, silence_from))
            if self._on_gpu:
                own = own.to_device(ctranslate2.Device.cuda)
            ranked = self.model.model.detect_language(own)[0]
            token, probability = ranked[0]
            out.append((token.strip("<|>"), float(probability)))
        return out
