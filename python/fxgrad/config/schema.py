"""The training configuration: a YAML (or JSON/TOML) file read into typed, validated sections.

Every key is checked: an unknown key (with a suggestion when it looks like a typo), a missing
required key, a value of the wrong type or a number that is not finite (``.inf``, ``.nan``)
raises :class:`ConfigError` naming the file and the dotted key. ``docs/training.md`` is the reference for every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import yaml

from .. import _native
from ..base.configfile import load_config
from ..base.files import PathLike
from .shipped import config_path, shipped_names


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


def _choices(*values: str) -> dict:
    return {"choices": values}


@dataclass
class ChainSection:
    """The black box: plugins in series and which of their parameters the network drives."""

    plugins: List[Any]
    learned: Optional[List[str]] = None
    pinned: Dict[str, float] = field(default_factory=dict)
    block_size: Optional[int] = None


@dataclass
class PairsSection:
    """A folder of inputs and a folder of targets, paired by file name."""

    input: str
    target: str


@dataclass
class SyntheticSection:
    """Generated material: synthetic notes whose level and tone follow smooth random control
    curves, and targets rendered through the chain itself with a hidden automation of the
    learned parameters that follows those curves (see :mod:`fxgrad.data.synth`)."""

    hidden: Dict[str, Dict[str, Any]]
    train_clips: int = 48
    valid_clips: int = 8
    test_clips: int = 8
    seconds: float = 4.0
    knot_seconds: float = 1.5
    seed: int = 1234
    folder: Optional[str] = None


@dataclass
class DataSection:
    train: Optional[Any] = None
    valid: Optional[Any] = None
    test: Optional[Any] = None
    valid_split: float = 0.1
    synthetic: Optional[SyntheticSection] = None
    min_clip_frames: int = 1
    length_tolerance: float = 0.01
    cache_size: int = 64


@dataclass
class EncoderSection:
    backbone: str = field(default="inception", metadata=_choices("inception", "mobilenetv2", "temporal"))
    context: int = 40960
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: Optional[float] = None
    options: Dict[str, Any] = field(default_factory=dict)
    features: str = field(default="window", metadata=_choices("window", "clip"))


@dataclass
class SpsaSection:
    lanes: int = 16
    eps: float = 0.01
    perturbations: int = 1
    strategy: str = field(default="lockstep", metadata=_choices(*_native.STRATEGIES))
    estimator: str = field(default="two-sided", metadata=_choices(*_native.ESTIMATORS))
    replay_samples: Optional[int] = None
    directions: str = field(default="rademacher", metadata=_choices(*_native.DIRECTIONS))
    shared: bool = False
    baseline: float = 0.0
    subspace: int = 0
    guided_share: float = 0.5
    threads: Optional[int] = None
    isolation: str = field(default="process", metadata=_choices("process", "sandbox", "none"))
    workers: int = 0
    timeout_s: Optional[float] = _native.DEFAULT_TIMEOUT_S  # absolute, per call; None: the default
    max_faults: int = 1000
    max_faults_per_minute: int = 30


@dataclass
class LossSection:
    type: str = field(default="delay_invariant", metadata=_choices("delay_invariant", "mrstft", "l1", "mse"))
    max_lag: int = 100
    alpha_time: float = 10.0
    alpha_freq: float = 1.0
    n_fft: int = 1024
    fft_sizes: List[int] = field(default_factory=lambda: [1024, 512, 256])
    hop_sizes: List[int] = field(default_factory=lambda: [256, 128, 64])
    win_lengths: List[int] = field(default_factory=lambda: [1024, 512, 256])


@dataclass
class TrainSection:
    steps: int = 100_000
    steps_per_epoch: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: Optional[float] = 4.0
    ema_decay: float = 0.0
    plateau_factor: float = 0.2
    plateau_patience: int = 5
    min_lr: float = 1.6e-6
    early_stopping: int = 25
    max_seconds: Optional[float] = None
    valid_frames: Optional[int] = None
    checkpoint_every: int = 500
    log_every: int = 10
    pretrain_steps: int = 0
    pretrain_lr: float = 1e-3
    pretrain_share: float = 0.1
    torch_threads: Optional[int] = None
    start_from: str = "defaults"
    progressive_steps: int = 0
    pipeline: bool = False
    resume_preroll: float = 1.0
    resume_warmup_frames: int = 8
    tensorboard: bool = True


@dataclass
class FitStaticSection:
    steps: int = 500
    lr: float = 0.01
    lanes: Optional[int] = None
    log_every: int = 10


@dataclass
class Config:
    """A whole training configuration (see ``docs/training.md``)."""

    chain: ChainSection
    data: DataSection
    name: str = "run"
    output_dir: Optional[str] = None
    seed: int = 0
    device: str = "auto"
    sample_rate: int = 22050
    channels: int = 1
    frame_size: int = 1024
    encoder: EncoderSection = field(default_factory=EncoderSection)
    spsa: SpsaSection = field(default_factory=SpsaSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    fit_static: FitStaticSection = field(default_factory=FitStaticSection)
    source: Optional[str] = field(default=None, metadata={"internal": True})

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: PathLike, overrides: Sequence[str] = ()) -> "Config":
        """Read and validate a config file (a path, or the name of a shipped config:
        :func:`fxgrad.config.shipped.config_path`); ``overrides`` are ``"dotted.key=value"`` strings
        (values parsed as YAML) applied on top."""
        path = config_path(path)
        try:
            raw = load_config(path, default_format="yaml")
        except FileNotFoundError as error:
            raise ConfigError(f"{error} (shipped configs, by name: {', '.join(shipped_names())})") from None
        except Exception as error:
            raise ConfigError(f"{path}: cannot parse: {error}") from error
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
        raw = apply_overrides(dict(raw), overrides, str(path))
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Optional[str] = None) -> "Config":
        prefix = f"{source}: " if source else ""
        try:
            config = _parse(cls, raw, "")
        except ConfigError as error:
            raise ConfigError(prefix + str(error)) from None
        config.source = source
        try:
            config._check()
        except ConfigError as error:
            raise ConfigError(prefix + str(error)) from None
        return config

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("source", None)
        return out

    # ------------------------------------------------------------------ derived values

    @property
    def run_dir(self) -> Path:
        """Where checkpoints, logs and results go (``output_dir``, default ``runs/NAME``)."""
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name

    @property
    def block_size(self) -> int:
        return int(self.chain.block_size or self.frame_size)

    def chain_config(self) -> Dict[str, Any]:
        """The dict :meth:`fxgrad.Chain.from_config` takes."""
        return {
            "plugins": list(self.chain.plugins),
            "learned": None if self.chain.learned is None else list(self.chain.learned),
            "pinned": dict(self.chain.pinned),
            "sample_rate": self.sample_rate,
            "block_size": self.block_size,
            "channels": self.channels,
        }

    def encoder_kwargs(self, num_parameters: int) -> Dict[str, Any]:
        e = self.encoder
        return dict(
            num_parameters=int(num_parameters),
            sample_rate=self.sample_rate,
            frame_size=self.frame_size,
            context=e.context,
            backbone=e.backbone,
            n_fft=e.n_fft,
            hop=e.hop,
            n_mels=e.n_mels,
            f_min=e.f_min,
            f_max=e.f_max,
            backbone_options=dict(e.options),
            features=e.features,
        )

    def _check(self) -> None:
        """The checks no single key's type can express, in the order of the sections."""
        _positive_fields(self, "", "sample_rate", "channels", "frame_size")
        if self.chain.block_size is not None:  # 0 would otherwise fall back to frame_size
            _positive(self.chain.block_size, "chain.block_size")
        if self.frame_size % self.block_size:
            raise ConfigError(
                f"chain.block_size ({self.block_size}) must divide frame_size ({self.frame_size}): "
                "the plugins process whole blocks of each frame"
            )
        if self.encoder.context < self.frame_size:
            raise ConfigError(f"encoder.context ({self.encoder.context}) must be >= frame_size ({self.frame_size})")
        _positive_fields(self.encoder, "encoder.", "n_fft", "hop", "n_mels")
        if self.encoder.n_mels > self.encoder.n_fft // 2 + 1:  # each mel band needs frequency bins of its own
            raise ConfigError(
                f"encoder.n_mels ({self.encoder.n_mels}) must be at most n_fft // 2 + 1 = {self.encoder.n_fft // 2 + 1}"
            )
        from ..nn.encoder import check_backbone_options

        try:
            check_backbone_options(self.encoder.backbone, self.encoder.options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"encoder.options: {error}") from None
        _check_chain(self.chain)
        _check_spsa(self.spsa)
        _check_train(self.train)
        _check_data(self.data)
        _positive_fields(self.fit_static, "fit_static.", "steps", "lr", "log_every")


# ---------------------------------------------------------------------- the sections' checks


def _positive(value, key: str) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{key} must be > 0, got {value}")


def _positive_fields(section, prefix: str, *names: str) -> None:
    for name in names:
        _positive(getattr(section, name), prefix + name)


def _check_chain(chain: ChainSection) -> None:
    if not chain.plugins:
        raise ConfigError("chain.plugins must list at least one plugin")
    for k, entry in enumerate(chain.plugins):
        if isinstance(entry, Mapping):
            extra = set(entry) - {"plugin", "select"}
            if "plugin" not in entry or extra:
                raise ConfigError(
                    f"chain.plugins[{k}] must be an identifier or a mapping with 'plugin' (and optional "
                    f"'select'), got keys {sorted(entry)}"
                )
        elif not isinstance(entry, str):
            raise ConfigError(f"chain.plugins[{k}] must be a string or mapping, got {type(entry).__name__}")


def _check_spsa(spsa: SpsaSection) -> None:
    _positive_fields(spsa, "spsa.", "lanes", "eps", "perturbations")
    for key in ("workers", "max_faults", "max_faults_per_minute"):
        if getattr(spsa, key) < 0:
            raise ConfigError(
                f"spsa.{key} must be >= 0 (0: {'automatic' if key == 'workers' else 'no limit'}), "
                f"got {getattr(spsa, key)}"
            )
    if spsa.timeout_s is not None:
        _positive(spsa.timeout_s, "spsa.timeout_s")


def _check_train(t: TrainSection) -> None:
    _positive_fields(t, "train.", "steps", "steps_per_epoch", "lr", "checkpoint_every", "log_every")
    if t.grad_clip is not None:
        _positive(t.grad_clip, "train.grad_clip")
    if not 0 <= t.ema_decay < 1:
        raise ConfigError(f"train.ema_decay must be in [0, 1) (0: no weight average), got {t.ema_decay}")
    if not 0 < t.plateau_factor < 1:
        raise ConfigError(f"train.plateau_factor must be in (0, 1), got {t.plateau_factor}")
    for key in ("pretrain_steps", "progressive_steps", "early_stopping", "plateau_patience", "resume_warmup_frames"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {getattr(t, key)}")
    if t.max_seconds is not None:
        _positive(t.max_seconds, "train.max_seconds")
    if not 0 < t.pretrain_share <= 1:
        raise ConfigError(f"train.pretrain_share must be in (0, 1], got {t.pretrain_share}")
    if t.torch_threads is not None:
        _positive(t.torch_threads, "train.torch_threads")
    if t.resume_preroll < 0:
        raise ConfigError(f"train.resume_preroll must be >= 0 seconds, got {t.resume_preroll}")


def _check_data(d: DataSection) -> None:
    """Also turns each split into a :class:`PairsSection`."""
    if d.train is None and d.synthetic is None:
        raise ConfigError("data needs 'train' (a folder with input/ and target/, or {input, target}) or 'synthetic'")
    if d.train is not None and d.synthetic is not None:
        raise ConfigError("data takes either 'train' (with optional valid/test) or 'synthetic', not both")
    for key in ("train", "valid", "test"):
        value = getattr(d, key)
        if value is not None:
            setattr(d, key, _pairs(value, f"data.{key}"))
    if not 0 <= d.valid_split < 1:
        raise ConfigError(f"data.valid_split must be in [0, 1), got {d.valid_split}")
    if d.synthetic is not None:
        s = d.synthetic
        _positive_fields(s, "data.synthetic.", "train_clips", "seconds", "knot_seconds")
        if s.valid_clips < 0 or s.test_clips < 0:
            raise ConfigError("data.synthetic.valid_clips and test_clips must be >= 0")
        if not s.hidden:
            raise ConfigError("data.synthetic.hidden must give every learned parameter's hidden automation")


def _pairs(value: Any, key: str) -> PairsSection:
    """A data split: ``"folder"`` (holding input/ and target/) or ``{input: ..., target: ...}``."""
    if isinstance(value, PairsSection):
        return value
    if isinstance(value, (str, os.PathLike)):
        from ..base.folders import split_folders

        try:
            return PairsSection(*(str(folder) for folder in split_folders(value)[:2]))
        except FileNotFoundError as error:
            raise ConfigError(f"{key}: {error}") from None
    if isinstance(value, Mapping):
        return _parse(PairsSection, value, key)
    raise ConfigError(f"{key} must be a folder path or a mapping with input and target, got {type(value).__name__}")


def apply_overrides(raw: Dict[str, Any], overrides: Sequence[str], source: str = "") -> Dict[str, Any]:
    """Apply ``"a.b.c=value"`` overrides (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return raw


# ---------------------------------------------------------------------- the checker


def _parse(cls, data: Any, where: str):
    label = where or "the config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label} must be a mapping of keys, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {_join(where, key)!r}{hint}; {label} takes: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name in data:
            value = _coerce(hints[name], data[name], key)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}")
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key} is required")
    return cls(**kwargs)


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " (or null)"
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (dict, Dict):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, "a value")


def _coerce(tp, value: Any, key: str):
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, key)
        return value
    if dataclasses.is_dataclass(tp):
        return _parse(tp, value, key)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _coerce(item, v, f"{key}.{k}") for k, v in value.items()}
    wrong = ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp is int:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        number = _number(value)
        if number is not None and float(number).is_integer():
            return int(number)
        raise wrong
    if tp is float:
        if isinstance(value, bool):
            raise wrong
        number = _number(value)
        if number is None:
            raise wrong
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(number)
    if tp is str:
        if isinstance(value, str):
            return value
        raise wrong
    return value


def _number(value: Any) -> Optional[float]:
    """A number from a YAML value; strings like ``1e-4`` count (YAML 1.1 reads them as text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
