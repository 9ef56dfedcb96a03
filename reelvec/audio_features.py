"""A fixed-size audio descriptor (AUDIO_DIM = 195 floats) from mono 16 kHz samples, numpy/scipy only.

Layout (offsets into the vector), every block computed over 20 ms hops of 64 ms Hann windows:

    [  0: 64]  log-mel mean      64 mel bands 30 Hz - 8 kHz, dB, floor 80 dB below the loudest value
    [ 64:128]  log-mel std
    [128:148]  MFCC mean         20 coefficients, DCT-II of the gain-normalized log-mel
    [148:168]  MFCC std
    [168:180]  chroma mean       12 pitch classes C..B, each frame max-normalized
    [180:192]  spectral          mean then std of: centroid, bandwidth, rolloff 85 %, flatness,
                                 zero-crossing rate, RMS (each in the log domain, see _SPECTRAL),
                                 over the frames within 50 dB of the loudest
    [192:195]  rhythm            tempo (BPM), onset-strength mean, onset-strength std

Scaling, so that cosine similarity means something. Raw statistics live on unrelated scales (dB,
Hz, BPM) and all share a large common offset, which would make every pair of clips look alike.
- Profile blocks (log-mel mean/std, MFCC mean/std, chroma) are standardized within the vector
  (minus their own mean, over their own std): they keep their shape, lose the overall gain. The
  same sound played louder gives the same profile.
- Scalar blocks (spectral, rhythm) are centred and scaled with fixed reference values typical of
  speech and music (the tables below), then squashed with tanh into (-1, 1), so that no outlier
  dominates.
- Each block is then weighted so that its share of the squared norm is its share in _BLOCKS, and
  the whole vector is L2-normalized. The cosine of two vectors is then about the weighted mean of the
  per-block correlations.
Silence and clips shorter than one window give finite vectors; a clip too short for a tempo (under
about 3 s) reports the reference tempo, i.e. a neutral 0 in its slot.
"""

import numpy as np
from scipy import fft

from reelvec.modalities import AUDIO_DIM
from reelvec.vectors import unit

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 320
N_MELS = 64
N_MFCC = 20
FMIN, FMAX = 30.0, 8000.0
VERSION = "audio_stats:1"  # bump when the layout or the scaling changes: stored vectors become stale
LOGMEL_WINDOW = 250  # frames: 5 s at HOP
LOGMEL_WINDOWS = 3

_EPS = 1e-10
_TOP_DB = 80.0  # dynamic range kept below the loudest log-mel value

# (location, scale) of the scalar features before tanh; means first, then standard deviations.
_SPECTRAL = [
    (0.0, 1.5),    # log2(centroid / 1 kHz)
    (0.0, 1.5),    # log2(bandwidth / 1 kHz)
    (-1.0, 1.5),   # log2(rolloff / 2 kHz)
    (-2.5, 2.0),   # log10(flatness)
    (-3.0, 1.5),   # log2(zero-crossing rate per sample)
    (-30.0, 15.0),  # RMS dBFS
    (0.5, 0.5),    # std of log2 centroid
    (0.4, 0.4),    # std of log2 bandwidth
    (1.0, 0.7),    # std of log2 rolloff
    (0.6, 0.5),    # std of log10 flatness
    (0.6, 0.5),    # std of log2 zero-crossing rate
    (6.0, 6.0),    # std of RMS dB
]
_RHYTHM = [(120.0, 40.0), (1.5, 1.5), (3.0, 3.0)]  # BPM, onset-strength mean and std (dB per hop)

_BLOCKS = [  # name, size, share of the squared norm
    ("logmel_mean", N_MELS, 0.25),
    ("logmel_std", N_MELS, 0.10),
    ("mfcc_mean", N_MFCC, 0.20),
    ("mfcc_std", N_MFCC, 0.10),
    ("chroma", 12, 0.10),
    ("spectral", len(_SPECTRAL), 0.15),
    ("rhythm", len(_RHYTHM), 0.10),
]
assert sum(size for _, size, _ in _BLOCKS) == AUDIO_DIM


def _mel_filters() -> np.ndarray:
    """Triangular filters on the HTK mel scale, each normalized to unit area (Slaney style)."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges_mel = np.linspace(mel(FMIN), mel(FMAX), N_MELS + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return (weights * (2.0 / (upper - lower))).astype(np.float32)


def _chroma_map() -> np.ndarray:
    """Assigns each FFT bin between A0 and C8 to its pitch class (C = 0)."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    mapping = np.zeros((12, len(freqs)), dtype=np.float32)
    audible = (freqs >= 27.5) & (freqs <= 4186.0)
    midi = 69.0 + 12.0 * np.log2(freqs[audible] / 440.0)
    mapping[np.round(midi).astype(int) % 12, np.flatnonzero(audible)] = 1.0
    return mapping


_MEL = _mel_filters()
_CHROMA = _chroma_map()
_FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE).astype(np.float32)
_WINDOW = np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def _frames(samples: np.ndarray) -> np.ndarray:
    padded = np.pad(samples, N_FFT // 2, mode="reflect" if len(samples) > N_FFT // 2 else "constant")
    if len(padded) < N_FFT:
        padded = np.pad(padded, (0, N_FFT - len(padded)))
    count = 1 + (len(padded) - N_FFT) // HOP
    return np.lib.stride_tricks.as_strided(
        padded, shape=(count, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0])
    )


def _standardize(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-6)


def _squash(values, reference) -> np.ndarray:
    location, scale = np.asarray(reference, dtype=np.float64).T
    return np.tanh((np.asarray(values, dtype=np.float64) - location) / scale)


def _spectral(power: np.ndarray, frames: np.ndarray) -> np.ndarray:
    rms_db = 20.0 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-5)
    # pauses would pull every statistic towards the values of digital silence: describe the frames
    # within 50 dB of the loudest (all of them when the clip is silent)
    active = rms_db > rms_db.max() - 50.0
    power, frames, rms_db = power[active], frames[active], rms_db[active]
    magnitude = np.sqrt(power)
    total = magnitude.sum(axis=1) + _EPS
    centroid = (magnitude * _FREQS).sum(axis=1) / total
    bandwidth = np.sqrt((magnitude * (_FREQS - centroid[:, None]) ** 2).sum(axis=1) / total)
    cumulative = np.cumsum(power, axis=1)
    rolloff = _FREQS[np.argmax(cumulative >= 0.85 * cumulative[:, -1:], axis=1)]
    flatness = np.exp(np.log(power + _EPS).mean(axis=1)) / (power.mean(axis=1) + _EPS)
    crossings = np.abs(np.diff(np.signbit(frames).astype(np.int8), axis=1)).mean(axis=1)
    per_frame = np.stack([
        np.log2(np.maximum(centroid, 1.0) / 1000.0),
        np.log2(np.maximum(bandwidth, 1.0) / 1000.0),
        np.log2(np.maximum(rolloff, 1.0) / 2000.0),
        np.log10(flatness + _EPS),
        np.log2(crossings + 1e-4),
        rms_db,
    ])
    return _squash(np.concatenate([per_frame.mean(axis=1), per_frame.std(axis=1)]), _SPECTRAL)


def _tempo(onset: np.ndarray) -> float:
    """Autocorrelation of the onset envelope, weighted towards 120 BPM (a log-normal prior with a
    one-octave spread, as in common beat trackers) to resolve octave ambiguity."""
    rate = SAMPLE_RATE / HOP
    lags = np.arange(int(rate * 60 / 240), int(rate * 60 / 40) + 1)
    if len(onset) < 2 * lags[-1] or onset.std() < 1e-6:
        return _RHYTHM[0][0]
    centred = onset - onset.mean()
    spectrum = np.fft.rfft(centred, n=2 * len(centred))
    autocorr = np.fft.irfft(spectrum * np.conj(spectrum))[: len(centred)]
    bpm = 60.0 * rate / lags
    prior = np.exp(-0.5 * np.log2(bpm / 120.0) ** 2)
    return float(bpm[np.argmax(autocorr[lags] * prior)])


def _spectrogram(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames, power spectrum and log-mel (dB, floored _TOP_DB under the loudest value)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    raw = _frames(samples)
    spectrum = fft.rfft(raw * _WINDOW, axis=1)  # scipy keeps float32 (complex64): half numpy's work
    power = spectrum.real**2 + spectrum.imag**2
    logmel = 10.0 * np.log10(power @ _MEL.T + _EPS)
    # a floor relative to the loudest value (not absolute) keeps the profiles independent of gain
    return raw, power, np.maximum(logmel, logmel.max() - _TOP_DB)


def logmel_windows(samples: np.ndarray, width: int = LOGMEL_WINDOW, count: int = LOGMEL_WINDOWS) -> np.ndarray:
    """The learned audio encoder's input: up to `count` windows of `width` log-mel frames (start,
    middle, end), float32 [n, N_MELS, width] in [-1, 0] (0 the clip's loudest value); a clip
    shorter than one window is padded with the floor."""
    _, _, logmel = _spectrogram(samples)
    scaled = ((logmel - logmel.max()) / _TOP_DB).astype(np.float32)
    if len(scaled) < width:
        scaled = np.pad(scaled, ((0, width - len(scaled)), (0, 0)), constant_values=-1.0)
    last = len(scaled) - width
    starts = sorted({0, last // 2, last})[:count]
    return np.stack([scaled[s : s + width].T for s in starts])


def features(samples: np.ndarray) -> np.ndarray:
    """AUDIO_DIM float32 values for mono float samples at SAMPLE_RATE; unit L2 norm."""
    raw, power, logmel = _spectrogram(samples)
    # the clip's own level is removed before the DCT: MFCCs describe timbre, not loudness
    mfcc = fft.dct(logmel - logmel.mean(), type=2, norm="ortho", axis=1)[:, :N_MFCC]
    chroma = power @ _CHROMA.T
    chroma = chroma / (chroma.max(axis=1, keepdims=True) + _EPS)
    onset = np.maximum(0.0, np.diff(logmel, axis=0)).mean(axis=1) if len(logmel) > 1 else np.zeros(1)

    blocks = {
        "logmel_mean": _standardize(logmel.mean(axis=0)),
        "logmel_std": _standardize(logmel.std(axis=0)),
        "mfcc_mean": _standardize(mfcc.mean(axis=0)),
        "mfcc_std": _standardize(mfcc.std(axis=0)),
        "chroma": _standardize(chroma.mean(axis=0)),
        "spectral": _spectral(power, raw),
        "rhythm": _squash([_tempo(onset), onset.mean(), onset.std()], _RHYTHM),
    }
    vector = np.concatenate([blocks[name] * np.sqrt(share / size) for name, size, share in _BLOCKS])
    return unit(vector).astype(np.float32)
