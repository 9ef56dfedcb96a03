"""Several short clips' speech in one Whisper window.

Whisper's encoder always works on a 30 s window, however short the clip: a 5 s clip pays for 30 s,
and on the ingest benchmark the encoder was two thirds of the transcriber's CPU
(docs/transcriber.md). Clips transcribed together are therefore laid end to end, their speech
only (the VAD's chunks, as faster-whisper does for a single clip) with a second of silence between
two clips, as many as fit in one window; one encoding serves them all. Words come back with
timestamps; each word goes to the clip its middle falls in, at its time in that clip.

Each clip keeps its own language: Whisper's language detector is given that clip's stretch of the
window's encoding, followed by the window's silent tail (Placed.encoded). When the clips of a pack
disagree, the caller transcribes them one by one.
"""

import bisect
import dataclasses

import numpy as np
from faster_whisper.vad import SpeechTimestampsMap

SAMPLE_RATE = 16000
WINDOW_S = 30.0  # Whisper's window
GAP_S = 1.0  # silence between two clips: Whisper ends a segment there
ENCODER_FRAMES_PER_S = 50  # 1500 encoder positions per 30 s window


@dataclasses.dataclass
class Clip:
    index: int  # in the caller's list
    audio: np.ndarray  # 16 kHz mono float32
    chunks: list[dict]  # the VAD's speech chunks, in samples ({"start", "end"})

    @property
    def speech_s(self) -> float:
        return sum(c["end"] - c["start"] for c in self.chunks) / SAMPLE_RATE


@dataclasses.dataclass
class Placed:
    clip: Clip
    start: float  # seconds into the packed audio
    end: float
    times: SpeechTimestampsMap  # time in the clip's joined speech -> time in the clip

    def original(self, packed_time: float, word) -> float:
        """`packed_time` (a start or end of `word`) in the clip, in the VAD chunk of the word's
        middle, as faster-whisper maps a word's times."""
        def inside(t: float) -> float:
            return min(max(t - self.start, 0.0), self.end - self.start)

        chunk = self.times.get_chunk_index(inside((word.start + word.end) / 2))
        return self.times.get_original_time(inside(packed_time), chunk)

    def encoded(self, encoding: np.ndarray, silence_from: int) -> np.ndarray:
        """This clip's positions of the window's encoding [1, 1500, d], followed by the window's
        silent tail (from position `silence_from`): a clip followed by silence, as Whisper saw
        its training windows. Its positions alone misled the language detector (Hungarian at 0.67
        for an English clip that scored 0.92 English with the tail)."""
        first = int(self.start * ENCODER_FRAMES_PER_S)
        own = encoding[:, first : max(first + 1, int(np.ceil(self.end * ENCODER_FRAMES_PER_S)))]
        tail = encoding[:, silence_from : silence_from + encoding.shape[1] - own.shape[1]]
        return np.ascontiguousarray(np.concatenate([own, tail], axis=1))


@dataclasses.dataclass(frozen=True)
class Words:
    """Consecutive words of one clip within one Whisper segment."""

    start: float  # in the clip
    end: float
    text: str


def packs(clips: list[Clip]) -> list[list[Clip]]:
    """The clips in as few windows as first-fit decreasing finds (longest first, each into the
    first pack it fits in with the gaps): taken in arrival order, a 12 s clip after two 10 s ones
    opened a window of its own that a 5 s clip would have shared. Each pack in arrival order."""
    out: list[list[Clip]] = []
    room: list[float] = []  # seconds left in each pack, a gap taken before every clip but the first
    for clip in sorted(clips, key=lambda c: c.speech_s, reverse=True):
        need = GAP_S + clip.speech_s
        at = next((i for i, left in enumerate(room) if left >= need), None)
        if at is None:
            out.append([])
            room.append(WINDOW_S + GAP_S)
            at = len(out) - 1
        out[at].append(clip)
        room[at] -= need
    return [sorted(pack, key=lambda c: c.index) for pack in out]


def lay_out(pack: list[Clip]) -> tuple[np.ndarray, list[Placed]]:
    """The packed audio, and where each clip's speech lies in it."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    pieces, placed, at = [], [], 0
    for clip in pack:
        speech = np.concatenate([clip.audio[c["start"] : c["end"]] for c in clip.chunks])
        if pieces:
            pieces.append(gap)
            at += gap.size
        placed.append(Placed(clip, at / SAMPLE_RATE, (at + speech.size) / SAMPLE_RATE,
                             SpeechTimestampsMap(clip.chunks, SAMPLE_RATE)))
        pieces.append(speech)
        at += speech.size
    return np.concatenate(pieces), placed


def split(segments, placed: list[Placed]) -> dict[int, list[Words]]:
    """Whisper's segments of the packed audio (with word timestamps), cut up by clip: for each
    clip's index, its runs of words in order."""
    bounds = [p.end + GAP_S / 2 for p in placed]  # a word in a gap goes to the nearer clip
    out: dict[int, list[Words]] = {p.clip.index: [] for p in placed}
    for segment in segments:
        run: list = []
        owner = None
        for word in [*(segment.words or []), None]:
            if word is not None:
                middle = (word.start + word.end) / 2
                where = placed[min(bisect.bisect_left(bounds, middle), len(placed) - 1)]
            if run and (word is None or where is not owner):
                text = "".join(w.word for w in run).strip()
                if text:
                    out[owner.clip.index].append(
                        Words(owner.original(run[0].start, run[0]), owner.original(run[-1].end, run[-1]), text)
                    )
                run = []
            if word is not None:
                owner = where
                run.append(word)
    return out
