"""Learning tests' shared pattern: recover a plugin's hidden static setting from audio alone."""

import numpy as np
import torch

import fxgrad
from fxgrad.torch import PluginLayer

SR = 22050
N = 1024


def learning_material(seed, seconds=4.0):
    """Tones and noise at stepped levels from -40 to -6 dBFS: compression engages at some
    levels and not at others, and the steps show the attack."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    level = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.integers(int(0.05 * SR), int(0.4 * SR)))
        level[pos : pos + length] = 10 ** (rng.uniform(-40, -6) / 20)
        pos += length
    signal = 0.6 * np.sin(2 * np.pi * rng.uniform(80, 400) * t) + 0.4 * rng.standard_normal(n)
    return (level * signal).astype(np.float32)[None]


def fit_static_parameters(plugin_path, names, hidden, steps, perturbations):
    """Adam through a PluginLayer (replay strategy, 4 lanes) on the logits of ``names`` of the
    plugin at ``plugin_path``, against its output at the normalised ``hidden`` setting; returns
    the fitted normalised values."""
    lanes = 4
    plugin = fxgrad.load(plugin_path, sample_rate=SR, block_size=256, channels=1)
    chain = fxgrad.Chain([plugin], learned=names)
    clips = [learning_material(s) for s in range(lanes)]
    targets = []
    for clip in clips:
        hidden_chain = chain.clone()
        hidden_chain.set_learned(np.array(hidden, np.float32))
        targets.append(hidden_chain.process(clip))
    layer = PluginLayer(
        chain, lanes=lanes, perturbations=perturbations, strategy="replay", replay_samples=8192, seed=0, threads=2
    )
    logits = torch.zeros(len(names), requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.05)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    frames = clips[0].shape[1] // N

    def envelope_db(a):
        return 10 * torch.log10((a.reshape(lanes, 1, -1, 64) ** 2).mean(-1) + 1e-8)

    for step in range(steps):
        f = step % frames
        if f == 0:
            layer.reset_lanes(np.ones(lanes, bool))
        x = torch.from_numpy(np.stack([c[:, f * N : (f + 1) * N] for c in clips]))
        target = torch.from_numpy(np.stack([c[:, f * N : (f + 1) * N] for c in targets]))
        y = layer(x, torch.sigmoid(logits).expand(lanes, -1))
        loss = ((y - target) ** 2).mean() * 100 + (envelope_db(y) - envelope_db(target)).abs().mean() * 0.05
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return torch.sigmoid(logits).detach().numpy()
