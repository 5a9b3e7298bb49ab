"""A minimal Standard MIDI File reader and writer (no dependencies).

Enough for the task builders: read a type 0/1 file into timed channel events (seconds, tempo map
applied, running status handled), split them into parts by (track, channel), and write type 0
files whose ticks are exactly one millisecond.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

from ...base.files import PathLike

#: The General MIDI percussion channel (0-based).
DRUM_CHANNEL = 9

# Written files: 1000 ticks per quarter at 1,000,000 us per quarter -> 1 tick = 1 ms.
_PPQ = 1000
_TEMPO_US = 1_000_000

_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


class MidiError(ValueError):
    """A file that is not a Standard MIDI File this reader understands."""


@dataclass(order=True)
class Event:
    """A channel message at ``time`` seconds: ``status`` (0x80..0xE0, channel bits cleared),
    ``channel`` (0-15), ``data`` (one or two 7-bit bytes)."""

    time: float
    order: int
    status: int
    channel: int
    data: Tuple[int, ...] = field(default=())

    @property
    def is_note_on(self) -> bool:
        return self.status == 0x90 and self.data[1] > 0

    @property
    def is_note_off(self) -> bool:
        return self.status == 0x80 or (self.status == 0x90 and self.data[1] == 0)


@dataclass
class Part:
    """The channel events of one (track, channel) of a song."""

    track: int
    channel: int
    name: str
    program: int
    events: List[Event]

    @property
    def is_drums(self) -> bool:
        return self.channel == DRUM_CHANNEL

    @property
    def notes(self) -> int:
        return sum(1 for e in self.events if e.is_note_on)


@dataclass
class Song:
    path: str
    parts: List[Part]

    @property
    def duration(self) -> float:
        """Time of the last note-off, seconds."""
        return max((e.time for p in self.parts for e in p.events if e.is_note_off), default=0.0)


def _varlen(data: bytes, pos: int) -> Tuple[int, int]:
    value = 0
    for _ in range(4):
        if pos >= len(data):
            raise MidiError("truncated variable-length number")
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos
    raise MidiError("variable-length number longer than 4 bytes")


def _encode_varlen(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative delta time")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


#: What :func:`read` collects from the tracks: ``(tick, track, order, kind, payload)`` with kind
#: ``"tempo"`` (microseconds per quarter,), ``"name"`` (the track name,) or ``"chan"`` (status,
#: channel, data bytes).
_Raw = Tuple[int, int, int, str, tuple]


def read(path: PathLike) -> Song:
    """Read a type 0 or 1 Standard MIDI File (metrical time division) into parts."""
    data = Path(path).read_bytes()
    if data[:4] != b"MThd" or len(data) < 14:
        raise MidiError(f"{path}: not a Standard MIDI File")
    length, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if division & 0x8000:
        raise MidiError(f"{path}: SMPTE time division is not supported")
    if fmt not in (0, 1):
        raise MidiError(f"{path}: MIDI file type {fmt} is not supported")
    pos = 8 + length
    raw: List[_Raw] = []
    for track in range(ntracks):
        while data[pos : pos + 4] != b"MTrk":
            if pos + 8 > len(data):
                raise MidiError(f"{path}: missing track {track}")
            pos += 8 + struct.unpack(">I", data[pos + 4 : pos + 8])[0]  # skip alien chunks
        size = struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        pos += 8
        end = min(pos + size, len(data))
        raw += _track_events(data, pos, end, track, path)
        pos = end
    return Song(str(path), _parts(raw, _tempo_map(raw, division)))


def _track_events(data: bytes, pos: int, end: int, track: int, path: PathLike) -> List[_Raw]:
    """The tempo changes, name and channel messages of the track chunk ``data[pos:end]``."""
    raw: List[_Raw] = []
    tick, running, order = 0, 0, 0
    while pos < end:
        delta, pos = _varlen(data, pos)
        tick += delta
        byte = data[pos]
        if byte == 0xFF:
            kind = data[pos + 1]
            n, pos = _varlen(data, pos + 2)
            payload = data[pos : pos + n]
            pos += n
            if kind == 0x51 and n == 3:
                raw.append((tick, track, order, "tempo", (int.from_bytes(payload, "big"),)))
            elif kind == 0x03:
                raw.append((tick, track, order, "name", (payload.decode("latin-1").strip(),)))
            elif kind == 0x2F:
                break
        elif byte in (0xF0, 0xF7):
            n, pos = _varlen(data, pos + 1)
            pos += n
        else:
            if byte & 0x80:
                running = byte
                pos += 1
            elif not running:
                raise MidiError(f"{path}: data byte without status in track {track}")
            count = _DATA_BYTES.get(running & 0xF0)
            if count is None:
                raise MidiError(f"{path}: unexpected status byte {running:#x}")
            values = tuple(data[pos : pos + count])
            pos += count
            raw.append((tick, track, order, "chan", (running & 0xF0, running & 0x0F, values)))
        order += 1
    return raw


def _tempo_map(raw: List[_Raw], division: int) -> Callable[[int], float]:
    """Ticks -> seconds under the file's tempo changes (120 bpm until the first)."""
    tempos = sorted((t, o, v[0]) for t, tr, o, k, v in raw if k == "tempo")
    tempos = [(t, us) for t, _, us in tempos]

    def seconds(tick: int) -> float:
        time, last_tick, us = 0.0, 0, 500_000
        for t, new_us in tempos:
            if t >= tick:
                break
            time += (t - last_tick) * us / 1e6 / division
            last_tick, us = t, new_us
        return time + (tick - last_tick) * us / 1e6 / division

    return seconds


def _parts(raw: List[_Raw], seconds: Callable[[int], float]) -> List[Part]:
    """The channel messages grouped by (track, channel), in time order; parts without a note are
    left out."""
    names: Dict[int, str] = {}
    parts: Dict[Tuple[int, int], List[Event]] = {}
    for tick, track, order, kind, payload in raw:
        if kind == "name":
            names.setdefault(track, payload[0])
        elif kind == "chan":
            status, channel, values = payload
            parts.setdefault((track, channel), []).append(
                Event(seconds(tick), tick * 65536 + order, status, channel, values)
            )
    result = []
    for (track, channel), events in sorted(parts.items()):
        events.sort()
        if not any(e.is_note_on for e in events):
            continue
        programs = [e.data[0] for e in events if e.status == 0xC0]
        result.append(Part(track, channel, names.get(track, ""), programs[0] if programs else 0, events))
    return result


def write(path: PathLike, events: Iterable[Event]) -> None:
    """Write channel events (times in seconds) as a type 0 file with 1 ms ticks."""
    body = bytearray()
    # tempo: 1,000,000 us per quarter
    body += b"\x00\xff\x51\x03" + _TEMPO_US.to_bytes(3, "big")
    last = 0
    for event in sorted(events, key=lambda e: (round(e.time * 1000), e.order)):
        tick = max(0, int(round(event.time * 1000)))
        body += _encode_varlen(tick - last)
        last = tick
        if event.status == 0xF0:  # system exclusive: data holds the bytes after F0, F7 included
            body += b"\xf0" + _encode_varlen(len(event.data)) + bytes(event.data)
        else:
            body += bytes([event.status | event.channel, *event.data])
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _PPQ)
    Path(path).write_bytes(header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body))


# ------------------------------------------------------------------ event helpers


def note_on(time: float, channel: int, key: int, velocity: int, order: int = 2) -> Event:
    return Event(time, order, 0x90, channel, (int(key), int(velocity)))


def note_off(time: float, channel: int, key: int, order: int = 1) -> Event:
    # note-offs sort before note-ons at the same millisecond (order 1 < 2)
    return Event(time, order, 0x80, channel, (int(key), 0))


def program(time: float, channel: int, number: int) -> Event:
    return Event(time, 0, 0xC0, channel, (int(number),))


def control(time: float, channel: int, number: int, value: int) -> Event:
    return Event(time, 0, 0xB0, channel, (int(number), int(value)))


def gm_reset(time: float) -> Event:
    """The General MIDI "GM System On" message: every channel back to its power-on state
    (programs, controllers, pitch-bend range)."""
    return Event(time, 0, 0xF0, 0, (0x7E, 0x7F, 0x09, 0x01, 0xF7))


def channel_reset(time: float, channel: int) -> List[Event]:
    """All notes off, all sound off, reset controllers, centre pan, full volume/expression, no
    pitch bend: the state a stem starts from."""
    return [
        control(time, channel, 120, 0),
        control(time, channel, 123, 0),
        control(time, channel, 121, 0),
        control(time, channel, 7, 100),
        control(time, channel, 11, 127),
        control(time, channel, 10, 64),
        Event(time, 0, 0xE0, channel, (0, 64)),
    ]


def excerpt(events: Sequence[Event], start: float, end: float, at: float) -> List[Event]:
    """The events of one channel part between ``start`` and ``end`` seconds, moved so that
    ``start`` falls at ``at``, preceded (just before ``at``) by the state the part had at
    ``start``: its program, last controller values, pitch bend, and the notes still held then
    (struck again)."""
    shift = at - start
    programs: List[Event] = []
    controls: Dict[int, Event] = {}
    bend: List[Event] = []
    held: Dict[Tuple[int, int], Event] = {}
    out: List[Event] = []
    for e in events:
        if e.time < start:
            if e.status == 0xC0:
                programs[:] = [e]
            elif e.status == 0xB0:
                controls.pop(e.data[0], None)
                controls[e.data[0]] = e  # dict order = order of last change
            elif e.status == 0xE0:
                bend[:] = [e]
            elif e.is_note_on:
                held[(e.channel, e.data[0])] = e
            elif e.is_note_off:
                held.pop((e.channel, e.data[0]), None)
        elif e.time <= end:
            out.append(Event(round(e.time + shift, 3), e.order, e.status, e.channel, e.data))
        else:
            break
    chase = at - 0.05 if start > 0 else at
    state = [
        Event(chase, k, e.status, e.channel, e.data) for k, e in enumerate(programs + list(controls.values()) + bend)
    ]
    strikes = [Event(chase, len(state) + k, e.status, e.channel, e.data) for k, e in enumerate(held.values())]
    return state + strikes + out
