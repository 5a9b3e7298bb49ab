"""``fxgrad apply``: a file rendered through a trained model's chain with its predicted
automation, with the parameter CSV and the plot beside the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from ..base.files import PathLike
from ..data.audio import conversions, read_audio, read_header, resample, write_audio
from ..io.params import read_parameter_csv, write_parameter_csv
from ..io.plot import plot_render
from ..nn.smoothing import Smoothing
from ..train.model import TrainedModel


def apply_file(
    checkpoint: PathLike,
    input_path: PathLike,
    output_path: PathLike,
    target_path: Optional[PathLike] = None,
    params_path: Optional[PathLike] = None,
    plot_path: Optional[PathLike] = None,
    reference_params: Optional[PathLike] = None,
    device: str = "cpu",
    source_rate: bool = False,
    smoothing: Optional[Smoothing] = None,
) -> Dict[str, Any]:
    """Render ``input_path`` through the model's chain with its predicted automation.

    The input is read at the model's sample rate and channel count (resampled, downmixed or
    copied to more channels as needed: ``conversions`` in the result says which). Writes the
    output audio at the model's sample rate, or with ``source_rate`` resampled back to the
    input file's rate; the parameter CSV (default: ``output_path`` with ``.params.csv`` in place
    of its extension, ``song_out.wav`` -> ``song_out.params.csv``) and the plot (default: with
    ``.png``).

    ``smoothing`` (:class:`fxgrad.nn.smoothing.Smoothing`) smooths the predicted parameters over
    time before they are rendered, written and plotted.

    Returns ``{"audio", "params", "plot"}`` (paths), ``"sample_rate"`` (Hz of the written audio),
    ``"input_rate"`` (Hz of the input file), ``"channels"`` and ``"conversions"`` (sentences;
    empty when the input needed none).
    """
    output_path = Path(output_path)
    if output_path.suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"{output_path}: write .wav or .flac")
    params_path = Path(params_path) if params_path else output_path.with_suffix(".params.csv")
    plot_path = Path(plot_path) if plot_path else output_path.with_suffix(".png")
    # Every input is read and checked before any output is written.
    model = TrainedModel.from_checkpoint(checkpoint, device)
    audio = read_audio(input_path, model.sample_rate, model.channels)
    converted = conversions(input_path, model.sample_rate, model.channels)
    input_rate = int(read_header(input_path).samplerate)
    rate = input_rate if source_rate else model.sample_rate
    target = None
    if target_path is not None:
        target = read_audio(target_path, model.sample_rate, model.channels)
        if target.shape[-1] != audio.shape[-1]:
            length = min(target.shape[-1], audio.shape[-1])
            target = target[:, :length]
    reference = read_parameter_csv(reference_params, model.names) if reference_params else None
    chain = model.new_chain()
    output, thetas = model.render(audio, chain, smoothing)
    plugins = model.plugin_names()
    plot_render(
        plot_path,
        model.sample_rate,
        model.frame_size,
        model.names,
        thetas,
        audio,
        output,
        target,
        reference,
        title=f"{Path(input_path).name} through {' -> '.join(plugins)}",
        plugin_names=plugins,
    )
    write_audio(output_path, resample(output, model.sample_rate, rate, "HQ"), rate)
    write_parameter_csv(params_path, chain, thetas, model.frame_size)
    return {
        "audio": output_path,
        "params": params_path,
        "plot": plot_path,
        "sample_rate": rate,
        "input_rate": input_rate,
        "channels": model.channels,
        "conversions": converted,
    }
