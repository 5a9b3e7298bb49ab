"""Paired (input, target) audio clips and the stateful frame stream that trains on them.

Effects have memory (envelopes, filters), so DeepAFx feeds every batch item ("lane") the
consecutive, non-overlapping frames of one clip, in order, through that lane's own plugin
instances; a lane moves on to a new clip only when its clip is exhausted, and the caller resets
that lane's plugins at that moment. :class:`FrameStreamer` produces exactly that stream, and
:func:`contexts` the same windows for a whole clip at once (inference).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch
from torch import Tensor

from ..base.files import PathLike
from ..base.folders import pair_by_name
from .audio import channel_change, read_audio, read_header

AUDIO_SUFFIXES = (".wav", ".flac")
"""File name endings (case-insensitive) that :class:`PairedAudioDataset` reads from a folder."""


class PairedAudioDataset:
    """Clips of input audio and the target audio the effects should turn them into.

    Files pair by name without extension (``a.wav`` in the input folder with ``a.wav`` or
    ``a.flac`` in the target folder). Every clip is delivered at ``sample_rate`` (resampled
    with soxr when a file's rate differs) with ``channels`` channels (a multichannel file is
    averaged down to mono; a mono file is replicated; other channel changes are refused). An
    input and its target must last the same time within ``length_tolerance`` seconds; both are
    trimmed to the shorter.

    Headers are read (and every problem reported) at construction; samples are read on first
    use and the ``cache_size`` most recently used clips are kept.

    Args:
        input_dir, target_dir: folders holding the WAV/FLAC files (not searched recursively).
        sample_rate: delivery rate in Hz.
        channels: delivery channel count.
        length_tolerance: largest accepted length difference in seconds.
        cache_size: clips kept in memory.

    Items:
        ``dataset[i]`` is ``(input, target)``, two float32 tensors (channels, samples) of
        ``dataset.num_samples(i)`` samples, linear amplitude. Cached tensors are shared
        between calls: copy them before modifying them in place.
    """

    def __init__(
        self,
        input_dir: PathLike,
        target_dir: PathLike,
        sample_rate: int,
        channels: int = 1,
        *,
        length_tolerance: float = 0.01,
        cache_size: int = 16,
    ) -> None:
        pairs = [(i, t) for _, i, t in pair_by_name(input_dir, target_dir, AUDIO_SUFFIXES, recursive=False)]
        self._initialise(pairs, sample_rate, channels, length_tolerance, cache_size)

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[tuple[PathLike, PathLike]],
        sample_rate: int,
        channels: int = 1,
        *,
        length_tolerance: float = 0.01,
        cache_size: int = 16,
    ) -> "PairedAudioDataset":
        """Dataset of explicit ``(input_path, target_path)`` pairs, in the given order."""
        dataset = cls.__new__(cls)
        dataset._initialise(
            [(Path(i), Path(t)) for i, t in pairs],
            sample_rate,
            channels,
            length_tolerance,
            cache_size,
        )
        return dataset

    def _initialise(
        self,
        pairs: list[tuple[Path, Path]],
        sample_rate: int,
        channels: int,
        length_tolerance: float,
        cache_size: int,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if length_tolerance < 0:
            raise ValueError(f"length_tolerance must be >= 0, got {length_tolerance}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if not pairs:
            raise ValueError("no (input, target) pairs given")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.pairs = pairs
        self._cache_size = int(cache_size)
        self._cache: OrderedDict[int, tuple[Tensor, Tensor]] = OrderedDict()
        self._lengths: list[int] = []
        for input_path, target_path in pairs:
            input_length = self._delivered_length(input_path)
            target_length = self._delivered_length(target_path)
            if abs(input_length - target_length) > length_tolerance * self.sample_rate:
                raise ValueError(
                    f"lengths differ by more than {length_tolerance} s: {input_path} has "
                    f"{input_length} samples and {target_path} {target_length} at "
                    f"{self.sample_rate} Hz"
                )
            self._lengths.append(min(input_length, target_length))

    def _delivered_length(self, path: Path) -> int:
        """Samples the file will have at ``sample_rate``; checks it is usable."""
        info = read_header(path)
        if info.frames <= 0:
            raise ValueError(f"audio file {path} has no samples")
        try:
            channel_change(info.channels, self.channels)
        except ValueError as error:
            raise ValueError(f"audio file {path} {error}") from None
        # soxr's output length is ceil(frames * out_rate / in_rate).
        return math.ceil(info.frames * self.sample_rate / info.samplerate)

    @property
    def names(self) -> list[str]:
        """Clip names (the input file names without extension), by index."""
        return [input_path.stem for input_path, _ in self.pairs]

    def fingerprint(self) -> str:
        """A digest of the clip names and lengths, in order: equal for the same clips wherever
        they lie (a checkpoint records it, so a run can resume on another machine)."""
        digest = hashlib.sha256()
        for name, length in zip(self.names, self._lengths):
            digest.update(f"{name}\0{length}\0".encode())
        return digest.hexdigest()[:16]

    def num_samples(self, index: int) -> int:
        """Length of clip ``index`` at ``sample_rate``, without loading it."""
        return self._lengths[index]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        index %= len(self)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        input_path, target_path = self.pairs[index]
        length = self._lengths[index]
        clip = (self._load(input_path, length), self._load(target_path, length))
        if self._cache_size:
            self._cache[index] = clip
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return clip

    def _load(self, path: Path, length: int) -> Tensor:
        """Read ``path`` as a float32 (channels, length) tensor at ``sample_rate``."""
        samples = read_audio(path, self.sample_rate, self.channels)
        if samples.shape[1] < length:  # the file changed since construction
            raise ValueError(f"audio file {path} has fewer samples than its header said")
        return torch.from_numpy(np.ascontiguousarray(samples[:, :length]))


@dataclass
class StreamBatch:
    """One step of a :class:`FrameStreamer`, for M lanes.

    Attributes:
        context: (M, C, W) input audio window centred on each lane's frame (the frame starts
            ``(W - N) // 2`` samples into it), zero outside the clip; or, from a streamer given
            ``features``, that window of the clip's features, e.g. (M, 1, n_mels, T) log-mel.
        frame: (M, C, N) input samples the effects process this step.
        target: (M, C, N) target samples for ``frame``.
        reset: bool (M,), True where the lane starts a new clip this step: reset that lane's
            effect instances before processing ``frame``.
        clip_index: int64 (M,), dataset index of each lane's clip; -1 for a lane with nothing
            left to stream (validation mode only).
        frame_index: int64 (M,), position of ``frame`` in its clip (frame ``k`` starts at sample
            ``k * N``); -1 for a finished lane.
        valid_samples: int64 (M,), how many leading samples of ``frame``/``target`` belong to
            the clip: N, except on a clip's last frame (zero-padded) and 0 for a finished lane.
    """

    context: Tensor
    frame: Tensor
    target: Tensor
    reset: Tensor
    clip_index: Tensor
    frame_index: Tensor
    valid_samples: Tensor

    @property
    def active(self) -> Tensor:
        """bool (M,), True for lanes that carry a clip's frame this step."""
        return self.clip_index >= 0


class FrameStreamer:
    """Streams consecutive non-overlapping frames of clips to M lanes, statefully.

    Each lane takes a clip, yields its frames in order (hop = ``frame_size``; the last frame
    is zero-padded, see ``StreamBatch.valid_samples``) together with the surrounding
    ``context`` window, and takes the next clip when it runs out, flagging ``reset``. No
    pre-roll audio is supplied: a lane has already delivered every earlier frame of its clip,
    and before a clip's first sample there is nothing (the context is zero there); a caller that
    wants to settle freshly reset effects should push silence through them.

    Training mode (``shuffle=True``) never ends: clips are dealt to lanes from a random
    permutation of the dataset, reshuffled each time it is used up (every clip once per pass).
    Validation mode (``shuffle=False``) deals the clips once, in index order; a lane with
    nothing left is marked finished (``clip_index == -1``), and iteration stops when all are.

    The stream is resumable: :meth:`state_dict` captures the generator, the deal order and
    every lane's position, so that after :meth:`load_state_dict` the stream continues exactly
    as the original would have.

    Args:
        dataset: a :class:`PairedAudioDataset` (or anything with ``len()``, ``channels``,
            ``num_samples(i)`` and ``[i] -> (input, target)`` (channels, samples) tensors).
        lanes: M, the batch size.
        frame_size: N, samples per frame and hop between frames.
        context: W >= N, samples of the encoder's window around each frame.
        seed: seed of the clip order in training mode.
        shuffle: training mode (True) or validation mode (False).
        min_clip_frames: clips with fewer frames (counting a final partial frame) are skipped.
        features: computes the encoder's input once per clip instead of cutting audio
            windows: an object with ``of_clip(audio) -> clip features`` and ``window(clip
            features, frame index) -> the frame's window`` (shaped ``mel_shape``), such as
            :class:`fxgrad.nn.encoder.ClipFeatures`; a lane computes its clip's features when
            it takes the clip.
    """

    def __init__(
        self,
        dataset: PairedAudioDataset,
        lanes: int,
        frame_size: int = 1024,
        context: int = 40960,
        seed: int = 0,
        shuffle: bool = True,
        min_clip_frames: int = 1,
        features: Optional[Any] = None,
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        if frame_size < 1 or context < frame_size:
            raise ValueError(f"need 1 <= frame_size <= context, got frame_size={frame_size}, context={context}")
        if min_clip_frames < 1:
            raise ValueError(f"min_clip_frames must be >= 1, got {min_clip_frames}")
        self.dataset = dataset
        self.lanes = int(lanes)
        self.frame_size = int(frame_size)
        self.context = int(context)
        self.shuffle = bool(shuffle)
        self.context_offset = (self.context - self.frame_size) // 2
        """Samples of context before the frame's first sample."""
        self._frame_counts = [math.ceil(dataset.num_samples(index) / self.frame_size) for index in range(len(dataset))]
        self._eligible = [index for index, count in enumerate(self._frame_counts) if count >= min_clip_frames]
        if not self._eligible:
            raise ValueError(f"no clip has at least {min_clip_frames} frames of {frame_size} samples")
        self._generator = torch.Generator().manual_seed(int(seed))
        self._order: list[int] = [] if self.shuffle else list(self._eligible)
        self._order_position = 0
        self._lane_clip = [-1] * self.lanes
        self._lane_frame = [0] * self.lanes
        self._lane_audio: list[Optional[tuple[Tensor, Tensor]]] = [None] * self.lanes
        self.features = features
        self._lane_features: list[Optional[Tensor]] = [None] * self.lanes

    def __iter__(self) -> "FrameStreamer":
        return self

    def _deal(self) -> int:
        """Next clip index to hand to a lane; -1 when validation has dealt every clip."""
        if self._order_position == len(self._order):
            if not self.shuffle:
                return -1
            permutation = torch.randperm(len(self._eligible), generator=self._generator)
            self._order = [self._eligible[i] for i in permutation.tolist()]
            self._order_position = 0
        clip = self._order[self._order_position]
        self._order_position += 1
        return clip

    def __next__(self) -> StreamBatch:
        channels = self.dataset.channels
        window_shape = (channels, self.context) if self.features is None else tuple(self.features.mel_shape)
        context = torch.zeros(self.lanes, *window_shape)
        frame = torch.zeros(self.lanes, channels, self.frame_size)
        target = torch.zeros(self.lanes, channels, self.frame_size)
        reset = torch.zeros(self.lanes, dtype=torch.bool)
        valid_samples = torch.zeros(self.lanes, dtype=torch.long)

        for lane in range(self.lanes):
            clip = self._lane_clip[lane]
            if clip < 0 or self._lane_frame[lane] >= self._frame_counts[clip]:
                clip = self._deal()
                self._lane_clip[lane] = clip
                self._lane_frame[lane] = 0
                self._lane_audio[lane] = None
                reset[lane] = clip >= 0
            if clip < 0:
                continue
            if self._lane_audio[lane] is None:
                self._lane_audio[lane] = self.dataset[clip]
                if self.features is not None:
                    self._lane_features[lane] = self.features.of_clip(self._lane_audio[lane][0])
            clip_input, clip_target = self._lane_audio[lane]
            start = self._lane_frame[lane] * self.frame_size
            valid_samples[lane] = _copy_window(clip_input, start, frame[lane])
            _copy_window(clip_target, start, target[lane])
            if self.features is None:
                _copy_window(clip_input, start - self.context_offset, context[lane])
            else:
                context[lane] = self.features.window(self._lane_features[lane], self._lane_frame[lane])

        clip_index = torch.tensor(self._lane_clip, dtype=torch.long)
        if not (clip_index >= 0).any():
            raise StopIteration
        frame_index = torch.where(clip_index >= 0, torch.tensor(self._lane_frame, dtype=torch.long), -1)
        for lane in range(self.lanes):
            if self._lane_clip[lane] >= 0:
                self._lane_frame[lane] += 1
        return StreamBatch(context, frame, target, reset, clip_index, frame_index, valid_samples)

    def retire(self, lanes) -> None:
        """Moves the given lanes on: each takes a new clip at the next step (flagged ``reset``),
        e.g. after its plugins faulted and restarted from the preset state mid-clip."""
        for lane in lanes:
            clip = self._lane_clip[int(lane)]
            if clip >= 0:
                self._lane_frame[int(lane)] = self._frame_counts[clip]

    def state_dict(self) -> dict:
        """Everything needed to continue this stream identically (small; torch.save-able)."""
        return {
            "lanes": self.lanes,
            "frame_size": self.frame_size,
            "context": self.context,
            "shuffle": self.shuffle,
            "eligible": list(self._eligible),
            "generator": self._generator.get_state(),
            "order": list(self._order),
            "order_position": self._order_position,
            "lane_clip": list(self._lane_clip),
            "lane_frame": list(self._lane_frame),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` of a streamer with the same configuration."""
        for key in ("lanes", "frame_size", "context", "shuffle", "eligible"):
            mine = getattr(self, "_" + key) if key == "eligible" else getattr(self, key)
            if state.get(key) != mine:
                raise ValueError(f"stream state has {key}={state.get(key)!r} but this streamer has {mine!r}")
        self._generator.set_state(state["generator"])
        self._order = list(state["order"])
        self._order_position = int(state["order_position"])
        self._lane_clip = list(state["lane_clip"])
        self._lane_frame = list(state["lane_frame"])
        self._lane_audio = [None] * self.lanes
        self._lane_features = [None] * self.lanes


def _copy_window(audio: Tensor, start: int, out: Tensor) -> int:
    """Copy ``audio[:, start:start + out_len]`` into zeroed ``out``, leaving zeros outside
    the clip; returns how many samples came from the clip."""
    length = out.shape[-1]
    begin, end = max(start, 0), min(start + length, audio.shape[-1])
    if end <= begin:
        return 0
    out[:, begin - start : end - start] = audio[:, begin:end]
    return end - begin


def contexts(audio: Tensor, frame_size: int, context: int, start: int, stop: int) -> Tensor:
    """(stop - start, C, W) context windows of frames ``start..stop`` of a whole clip ``audio``
    (C, samples), as :class:`FrameStreamer` cuts them: the frame begins ``(W - N) // 2`` samples
    into its window, zeros outside the clip."""
    offset = (context - frame_size) // 2
    channels, samples = audio.shape
    first = start * frame_size - offset
    last = (stop - 1) * frame_size - offset + context
    left, right = max(0, -first), max(0, last - samples)
    span = audio[:, max(first, 0) : min(last, samples)]
    padded = torch.nn.functional.pad(span, (left, right))
    windows = padded.unfold(-1, context, frame_size)  # (C, frames, W)
    return windows.permute(1, 0, 2).contiguous()
