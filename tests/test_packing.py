"""Packing short clips into one Whisper window (services/transcriber/packing.py): the layout, and
how a transcript of the packed audio is cut back into each clip's words at each clip's times. The
model-backed behaviour is in test_transcriber.py."""

import dataclasses

import numpy as np

from services.transcriber import packing

RATE = packing.SAMPLE_RATE


@dataclasses.dataclass
class Word:  # what faster-whisper gives for each word
    start: float
    end: float
    word: str


@dataclasses.dataclass
class Segment:
    words: list


def clip(index: int, seconds: float, *speech: tuple[float, float]) -> packing.Clip:
    audio = np.zeros(int(seconds * RATE), np.float32)
    chunks = [{"start": int(a * RATE), "end": int(b * RATE)} for a, b in speech]
    for c in chunks:
        audio[c["start"] : c["end"]] = index + 1  # marks whose speech a sample is
    return packing.Clip(index, audio, chunks)


def test_clips_fill_windows_longest_first_each_pack_in_arrival_order():
    clips = [clip(i, 30, (0, s)) for i, s in enumerate([10, 10, 8, 29, 3])]
    assert [[c.index for c in p] for p in packing.packs(clips)] == [[3], [0, 1, 2], [4]]


def test_a_later_clip_fills_the_room_an_earlier_window_left():
    # in arrival order 20 | 15 + 9 | 14 takes three windows; 20 + 9 and 15 + 14 (with their
    # 1 s gaps) fill two exactly
    clips = [clip(i, 30, (0, s)) for i, s in enumerate([20, 15, 9, 14])]
    packs = packing.packs(clips)
    assert [[c.index for c in p] for p in packs] == [[0, 2], [1, 3]]
    assert all(packing.lay_out(p)[0].size <= packing.WINDOW_S * RATE for p in packs)


def test_the_layout_is_each_clips_speech_with_a_second_of_silence_between():
    a, b = clip(0, 10, (1, 3), (5, 6)), clip(1, 4, (0.5, 2.5))
    audio, placed = packing.lay_out([a, b])
    assert [(p.start, p.end) for p in placed] == [(0.0, 3.0), (4.0, 6.0)]
    assert audio.size == 6 * RATE
    assert set(audio[: 3 * RATE]) == {1.0} and set(audio[3 * RATE : 4 * RATE]) == {0.0}
    assert set(audio[4 * RATE :]) == {2.0}


def test_words_go_back_to_their_clip_at_their_time_in_it():
    a, b = clip(0, 10, (1, 3), (5, 6)), clip(1, 4, (0.5, 2.5))
    _, placed = packing.lay_out([a, b])
    segments = [
        # one segment across the boundary: the first two words are a's, the third b's
        Segment([Word(0.1, 0.5, " hello"), Word(2.2, 2.8, " there"), Word(4.2, 4.6, " big")]),
        Segment([Word(5.0, 5.5, " world")]),
    ]
    runs = packing.split(segments, placed)
    # "there" lies in a's second VAD chunk (from 5 s in the clip): 2.2 s of speech in -> 5.2 s
    assert runs[0] == [packing.Words(1.1, 5.8, "hello there")]
    assert runs[1] == [packing.Words(0.7, 1.1, "big"), packing.Words(1.5, 2.0, "world")]
