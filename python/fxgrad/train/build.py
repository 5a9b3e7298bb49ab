"""What a run is built from its config: the data splits, the chain, the loss and the plugin layers."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from torch import nn

from .. import _native
from ..config.schema import Config, ConfigError, PairsSection
from ..data.stream import PairedAudioDataset
from ..host.plugins import Chain
from ..host.probes import checked_chain
from ..nn.losses import DelayInvariantLoss, MultiResolutionSTFTLoss, PointwiseLoss
from ..torch import PluginLayer
from .distributed import World
from .errors import TrainingError
from .files import PLUGIN_LOG


@dataclass
class Splits:
    train: PairedAudioDataset
    valid: Optional[PairedAudioDataset]
    test: Optional[PairsSection]
    params: Dict[str, Path]
    """Folders of hidden parameter trajectories by split (synthetic data only)."""


def prepare_data(config: Config, world: Optional[World] = None, progress: bool = True) -> Splits:
    """Datasets of the config's data section; synthetic data is generated first (once, by rank 0)."""
    world = world or World()
    d = config.data
    params: Dict[str, Path] = {}
    if d.synthetic is not None:
        split = _synthetic_splits(config, world, progress)
        params = {name: Path(pairs.input).parent / "params" for name, pairs in split.items()}
        train, valid, test = split["train"], split.get("valid"), split.get("test")
    else:
        train, valid, test = d.train, d.valid, d.test
    options = dict(length_tolerance=d.length_tolerance, cache_size=d.cache_size)

    def dataset(pairs: PairsSection, role: str) -> PairedAudioDataset:
        try:
            return PairedAudioDataset(pairs.input, pairs.target, config.sample_rate, config.channels, **options)
        except ValueError as error:
            raise TrainingError(f"data.{role}: {error}") from None

    train_set = dataset(train, "train")
    valid_set = dataset(valid, "valid") if valid is not None else None
    if valid_set is None and d.valid_split > 0 and len(train_set) >= 2:
        count = max(1, int(round(len(train_set) * d.valid_split)))
        pairs = list(train_set.pairs)
        valid_set = PairedAudioDataset.from_pairs(pairs[-count:], config.sample_rate, config.channels, **options)
        train_set = PairedAudioDataset.from_pairs(pairs[:-count], config.sample_rate, config.channels, **options)
    return Splits(train_set, valid_set, test, params)


def _synthetic_splits(config: Config, world: World, progress: bool) -> Dict[str, PairsSection]:
    """Generates the synthetic data set (rank 0; the others wait) and names its splits' folders."""
    from ..data.synth import generate

    s = config.data.synthetic
    folder = Path(s.folder) if s.folder else config.run_dir / "data"
    clips = {"train": s.train_clips, "valid": s.valid_clips, "test": s.test_clips}
    if world.is_main:
        generate(
            folder,
            config.chain_config(),
            s.hidden,
            config.frame_size,
            clips,
            s.seconds,
            s.seed,
            knot_seconds=s.knot_seconds,
            progress=progress,
        )
    world.barrier()
    return {
        name: PairsSection(str(folder / name / "input"), str(folder / name / "target"))
        for name, count in clips.items()
        if count > 0
    }


def _probed(config: Config, load: Optional[Callable[[], Chain]] = None) -> Optional[Chain]:
    """:func:`fxgrad.host.probes.checked_chain`, its faults as a :class:`TrainingError`."""
    try:
        return checked_chain(config.chain_config(), config.spsa.timeout_s, load)
    except (_native.PluginCrashedError, _native.PluginTimeoutError, _native.PluginOutputError) as error:
        raise TrainingError(
            f"chain: {error}; the run was not started (pin a value that avoids it, or leave the plugin out; "
            "`fxgrad check PLUGIN` probes a plugin on its own)"
        ) from None


def build_chain(config: Config) -> Chain:
    """The config's chain, loaded (a :class:`ConfigError` names what in ``chain`` is wrong).
    With isolation, a chain of third-party plugins is first tried where a fault cannot end this
    process (:mod:`fxgrad.host.probes`; with ``sandbox``, a child loads it, then this process,
    and it renders in a sandboxed worker, so that no plugin renders outside the sandbox): a
    plugin that crashes, aborts or hangs when loaded or at its preset and pinned settings is a
    :class:`TrainingError` naming it, within ``spsa.timeout_s`` per step, instead of a signal or
    a hang of this process."""

    def load() -> Chain:
        return Chain.from_config(config.chain_config())

    try:
        if config.spsa.isolation == "sandbox":
            chain = _probed(config, load)
        else:
            if config.spsa.isolation == "process":
                _probed(config)
            chain = load()
    except FileNotFoundError as error:
        raise TrainingError(f"chain: {error}") from None
    except (ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ConfigError(f"{config.source or 'config'}: chain: {message}") from None
    if chain.num_parameters == 0:
        raise ConfigError(f"{config.source or 'config'}: chain: no learned parameters (check chain.learned)")
    return chain


def build_loss(config: Config) -> nn.Module:
    """The training loss of the config's ``loss`` section."""
    section = config.loss
    if section.type == "delay_invariant":
        return DelayInvariantLoss(section.max_lag, section.alpha_time, section.alpha_freq, section.n_fft)
    if section.type == "mrstft":
        return MultiResolutionSTFTLoss(section.fft_sizes, section.hop_sizes, section.win_lengths)
    return PointwiseLoss(section.type)


def plugin_threads(config: Config, world: Optional[World] = None) -> int:
    """The native threads a rack of this process gets: ``spsa.threads``, or by default this
    machine's cores shared by the processes ``torchrun`` started on it."""
    local = (world or World()).local_world_size
    return int(config.spsa.threads or max(1, (os.cpu_count() or 1) // local))


#: Machines with at most this many cores run a CPU encoder on one thread by default: with two
#: threads on a busy 2-core machine the demo's encoder ran 10-20x slower than with one
#: (OpenMP waits on a core another process holds), and 1.3x faster only when the machine was idle.
SMALL_MACHINE_CORES = 4


def encoder_threads(config: Config) -> int:
    """Torch's threads for an encoder on the CPU: ``train.torch_threads``, or by default one on
    a machine of :data:`SMALL_MACHINE_CORES` cores or fewer, else torch's own choice."""
    if config.train.torch_threads:
        return int(config.train.torch_threads)
    import torch

    return 1 if (os.cpu_count() or 1) <= SMALL_MACHINE_CORES else torch.get_num_threads()


def spsa_layer(
    chain: Chain,
    config: Config,
    lanes: int,
    threads: int,
    seed: int,
    worker_log: Optional[Path] = None,
    **overrides: Any,
) -> PluginLayer:
    """The one place a training :class:`PluginLayer` is built from the ``spsa`` section;
    ``overrides`` replace some of its fields (e.g. ``shared=False``)."""
    s = dataclasses.replace(config.spsa, **overrides)
    return PluginLayer(
        chain,
        lanes,
        s.eps,
        s.perturbations,
        s.strategy,
        s.estimator,
        s.replay_samples,
        seed=seed,
        directions=s.directions,
        shared=s.shared,
        baseline=s.baseline,
        subspace=s.subspace,
        guided_share=s.guided_share,
        **_isolation(config, threads, worker_log),
    )


def render_layer(
    chain: Chain, config: Config, lanes: int, threads: int, worker_log: Optional[Path] = None
) -> PluginLayer:
    """A layer that only renders (validation): no gradient is ever asked of it, so it is built
    with the fewest instances per lane a rack can have (replay, one-sided, no history: one
    evaluator) and a constant seed (it never perturbs)."""
    from .seeds import VALIDATION_LAYER

    return PluginLayer(
        chain,
        lanes,
        strategy="replay",
        estimator="one-sided",
        replay_samples=0,
        seed=VALIDATION_LAYER,
        **_isolation(config, threads, worker_log),
    )


def _isolation(config: Config, threads: int, worker_log: Optional[Path]) -> dict:
    """The layer settings of the ``spsa`` section that training and rendering layers share."""
    s = config.spsa
    return dict(
        threads=threads,
        isolation=s.isolation,
        workers=s.workers,
        timeout_s=s.timeout_s,
        worker_log=worker_log,
        max_faults=s.max_faults,
        max_faults_per_minute=s.max_faults_per_minute,
    )


def checked_layer(run_dir: Path, build: Callable[[], PluginLayer]) -> PluginLayer:
    """``build()`` with the run folder present (isolated workers write their output there); a
    setting it refuses is a :class:`TrainingError`, and a folder made for it is removed again:
    nothing is written before the inputs are validated."""
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return build()
    except ValueError as error:
        if made:
            (run_dir / PLUGIN_LOG).unlink(missing_ok=True)
            run_dir.rmdir()
        raise TrainingError(f"spsa: {error}") from None
