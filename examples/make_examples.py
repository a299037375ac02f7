"""Render the bundled example clips: real sampled instruments through fluidsynth.

    apt-get install fluidsynth fluid-soundfont-gm
    python examples/make_examples.py

Writes examples/guitar.flac (a clean electric guitar riff with bass and drums, 12 s,
44.1 kHz mono, 16-bit) and three held-out clips for benchmarks in bench/data/ (piano,
slap bass, a drum groove with speech-like choir pad), from MIDI files this script
composes. The clips are committed, so users need neither fluidsynth nor the soundfont;
this script is how they were made.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TPQ = 480  # ticks per quarter note


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_file(notes: list[tuple[int, int, int, int, int]], programs: dict[int, int], bpm: float) -> bytes:
    """notes: (start_tick, length_ticks, channel, pitch, velocity) -> a format-0 MIDI file."""
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big"))]
    events += [(0, bytes([0xC0 | ch, prog])) for ch, prog in programs.items()]
    for start, length, ch, pitch, vel in notes:
        events.append((start, bytes([0x90 | ch, pitch, vel])))
        events.append((start + length, bytes([0x80 | ch, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))
    track, now = b"", 0
    for tick, data in events:
        track += _vlq(tick - now) + data
        now = tick
    track += _vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPQ) + b"MTrk" + struct.pack(">I", len(track)) + track


def riff() -> bytes:
    q, e = TPQ, TPQ // 2
    notes = []
    # guitar (clean electric, GM 27) power chords over E, G, A, C; bass (GM 33) roots; drums on channel 9
    roots = [40, 43, 45, 48] * 3
    for bar, root in enumerate(roots):
        t0 = bar * 4 * q
        for k in range(8):
            start = t0 + k * e
            vel = 100 if k % 2 == 0 else 75
            for interval in (0, 7, 12):
                notes.append((start, e - 20, 0, root + interval, vel))
        notes.append((t0, 2 * q - 10, 1, root - 12, 100))
        notes.append((t0 + 2 * q, 2 * q - 10, 1, root - 5, 90))
        for beat in range(4):
            notes.append((t0 + beat * q, q // 4, 9, 36 if beat % 2 == 0 else 38, 110))
            notes.append((t0 + beat * q, q // 4, 9, 42, 70))
            notes.append((t0 + beat * q + e, q // 4, 9, 42, 60))
    return midi_file(notes, {0: 27, 1: 33}, bpm=120)


def render(midi: bytes, out: Path, seconds: float, sr: int = 44100) -> None:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise SystemExit("needs: apt-get install fluidsynth fluid-soundfont-gm")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "riff.mid", Path(tmp) / "riff.wav"
        mid.write_bytes(midi)
        subprocess.run(["fluidsynth", "-ni", "-g", "0.6", "-r", str(sr), "-F", str(wav), str(SOUNDFONT), str(mid)],
                       check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
    mono = audio.mean(axis=1)[: int(seconds * rate)]
    mono *= 10 ** (-3 / 20) / np.abs(mono).max()  # peak at -3 dBFS
    sf.write(out, mono, rate, subtype="PCM_16")


def piano() -> bytes:
    q = TPQ
    notes = []
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)] * 2
    for bar, chord in enumerate(chords):
        t0 = bar * 4 * q
        for k, pitch in enumerate(chord * 2):
            notes.append((t0 + k * q // 2, q * 2, 0, pitch + (12 if k >= 3 else 0), 50 + 10 * (k % 4)))
        notes.append((t0, 4 * q - 20, 0, chord[0] - 24, 80))
    return midi_file(notes, {0: 0}, bpm=100)


def bass_and_drums() -> bytes:
    q, s16 = TPQ, TPQ // 4
    notes = []
    line = [36, 36, 48, 36, 39, 41, 36, 43]
    for bar in range(8):
        t0 = bar * 4 * q
        for k, pitch in enumerate(line):
            notes.append((t0 + k * q // 2, q // 2 - 30, 0, pitch, 90 + (15 if k % 2 == 0 else -10)))
        for k in range(16):
            if k % 4 == 0:
                notes.append((t0 + k * s16, s16, 9, 36, 120))
            if k % 8 == 4:
                notes.append((t0 + k * s16, s16, 9, 38, 115))
            notes.append((t0 + k * s16, s16, 9, 42 if k % 2 == 0 else 44, 50 + 20 * (k % 2)))
        notes.append((t0, 4 * q, 1, 52 + (bar % 4), 45))  # choir pad
    return midi_file(notes, {0: 36, 1: 52}, bpm=110)


def strings() -> bytes:
    q = TPQ
    notes = []
    melody = [72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 67]
    for k, pitch in enumerate(melody):
        notes.append((k * q, q - 10, 0, pitch, 40 + 7 * (k % 6)))  # violin swells
    for bar in range(3):
        notes.append((bar * 4 * q, 4 * q, 1, 48 + 5 * bar, 70))  # cello
    return midi_file(notes, {0: 40, 1: 42}, bpm=90)


def clipped(src: Path, out: Path, input_sdr_db: float = 8.0) -> None:
    """A clipped master for `fxnet remove`: hard-clipped at an input SDR, normalised to -0.1 dBFS."""
    import numpy as np
    import soundfile as sf

    from fxnet.effects.clipping import clip_to_input_sdr

    x, sr = sf.read(src, dtype="float32")
    y = clip_to_input_sdr(x, input_sdr_db)
    sf.write(out, y / np.abs(y).max() * 10 ** (-0.1 / 20), sr, subtype="PCM_16")


if __name__ == "__main__":
    render(riff(), HERE / "guitar.flac", seconds=12.0)
    clipped(HERE / "guitar.flac", HERE / "guitar_clipped.flac")
    data = HERE.parent / "bench" / "data"
    data.mkdir(parents=True, exist_ok=True)
    render(piano(), data / "piano.flac", seconds=10.0)
    render(bass_and_drums(), data / "bass_drums.flac", seconds=10.0)
    render(strings(), data / "strings.flac", seconds=8.0)
    print("wrote examples/guitar.flac, examples/guitar_clipped.flac and bench/data/*.flac")
