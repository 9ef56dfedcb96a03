"""The reelvec.v1.Transcriber service: Whisper transcripts and text embeddings."""

import asyncio
import dataclasses
import logging
import re
from pathlib import Path

from reelvec import config, errors, limits, media
from reelvec.group_commit import GroupCommit
from reelvec.models import text_model_dir
from reelvec.server import timed
from reelvec.v1 import common_pb2, transcriber_pb2, transcriber_pb2_grpc
from services.transcriber.speech import Speech, Transcript
from services.transcriber.text_embedding import TextEmbedder


@dataclasses.dataclass
class Settings(config.ServerSettings):
    port: int = 50053
    whisper_model: str = "base"  # multilingual; "tiny.en" is English-only and ~2x faster
    device: str = dataclasses.field(default="cpu", metadata={"choices": ("cpu", "cuda")})
    compute_type: str = ""  # empty: int8 on cpu, float16 on cuda
    cpu_threads: int = 0  # threads per model call; 0: the cores shared out among max_transcriptions
    beam_size: int = 5
    # Transcriptions run at once (each is a CTranslate2 worker); the requests that queue meanwhile
    # are transcribed together, short clips sharing Whisper windows (packing.py), up to
    # pack_max_clips per call. Text embeddings have their own slots so a search query never waits
    # behind a long transcription.
    max_transcriptions: int = 2
    pack_max_clips: int = 8
    # While a transcription runs, a lone request waits up to this long for another to share its
    # window before it takes the free worker (docs/transcriber.md: packing).
    pack_linger_seconds: float = 0.3
    max_text_embeddings: int = 4
    text_model_dir: str = ""  # empty: where `make models` put it

    def __post_init__(self):
        self.text_model_dir = self.text_model_dir or str(text_model_dir())


log = logging.getLogger(__name__)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def embedding_text(caption: str, hashtags, transcript: str) -> str:
    """Caption first, then hashtags as words (#BookTok, book_tok -> "Book Tok", "book tok"), then
    the transcript: truncation at 256 tokens cuts the transcript, never what the author wrote."""
    tags = " ".join(_CAMEL.sub(" ", t.lstrip("#")).replace("_", " ") for t in hashtags)
    return "\n".join(part for part in (caption.strip(), tags.strip(), transcript.strip()) if part)


def _to_proto(transcript: Transcript) -> common_pb2.Transcript:
    return common_pb2.Transcript(
        text=transcript.text,
        language=transcript.language,
        language_probability=transcript.language_probability,
        segments=[
            common_pb2.Segment(start=s.start, end=s.end, text=s.text) for s in transcript.segments
        ],
    )


async def _together(speech: Speech, audios: list) -> list[Transcript | Exception]:
    """The clips that queued together, packed; when that fails, each alone, so that one clip that
    breaks fails its own request only."""
    try:
        return await speech.predict(audios)
    except Exception:
        log.exception("transcribing clips together failed: each alone", extra={"clips": len(audios)})
    out = []
    for audio in audios:
        try:
            out.extend(await speech.predict([audio]))
        except Exception as exc:
            out.append(exc)
    return out


class Transcriber(transcriber_pb2_grpc.TranscriberServicer):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.speech: Speech | None = None
        self.embedder: TextEmbedder | None = None
        self._transcriptions: GroupCommit | None = None
        self._embeddings = asyncio.Semaphore(settings.max_text_embeddings)

    async def load(self) -> None:
        s = self.settings
        speech = Speech(s.whisper_model, s.device, s.compute_type, s.cpu_threads, workers=s.max_transcriptions,
                        beam_size=s.beam_size)
        embedder = TextEmbedder(Path(s.text_model_dir), s.device, s.cpu_threads)
        for model in (speech, embedder):
            await model.load()
        self.speech, self.embedder = speech, embedder  # only loaded models: _ready tells the rest apart
        self._transcriptions = GroupCommit(lambda audios: _together(speech, audios),
                                           s.pack_max_clips, s.max_transcriptions, s.pack_linger_seconds)

    def _ready(self) -> tuple[Speech, TextEmbedder]:
        if self.speech is None or self.embedder is None or self._transcriptions is None:
            raise errors.Unavailable("transcriber is still loading its models")
        return self.speech, self.embedder

    async def _embed(self, embedder: TextEmbedder, text: str) -> list[float]:
        with timed("queued"):
            await self._embeddings.acquire()
        try:
            with timed("model"):
                vectors = await embedder.predict([text])
        finally:
            self._embeddings.release()
        return vectors[0].tolist()

    async def Transcribe(self, request, context):
        speech, embedder = self._ready()
        limits.check_video_size(len(request.video), self.settings.max_video_mb)
        with timed("decode"):
            audio = await asyncio.to_thread(media.decode_audio, request.video)
        with timed("model"):  # with the wait for a free worker, where the queued clips are packed
            transcript: Transcript = await self._transcriptions.submit(audio)
        words = embedding_text(request.caption, request.hashtags, transcript.text)
        return transcriber_pb2.TranscribeResponse(
            transcript=_to_proto(transcript),
            text=await self._embed(embedder, words) if words else [],
            whisper_model=speech.name,
            text_model=embedder.name,
        )

    async def EmbedText(self, request, context):
        _, embedder = self._ready()
        if not request.text.strip():
            raise errors.InvalidInput("text is empty")
        return transcriber_pb2.EmbedTextResponse(
            text=await self._embed(embedder, request.text), text_model=embedder.name
        )
