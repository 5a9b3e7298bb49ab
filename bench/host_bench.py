"""Real-time factor of the Calf Multiband Compressor (bands on) through fxgrad, next to the
plugin's own DSP time and to DawDreamer 0.9.0.

60 s of stereo noise at 44.1 kHz, 1024-sample blocks, processed by:

  dsp-only   a minimal C loop calling the plugin's LV2 run() directly on slices of the input
             (no host, no copies): the plugin's own DSP time, the floor for any host;
  fxgrad-a   fxgrad, one process() call of 60 s;
  fxgrad-b   fxgrad, 1024-sample process() calls from Python;
  dawdreamer DawDreamer 0.9.0 (its own JUCE; run in a subprocess), render() of a playback
             processor into the plugin.

Each is repeated (--reps, default 7, in interleaved rounds so that load changes hit every method
alike) and the median reported, with the minimum beside it (the least disturbed run on a busy
machine). Every method's output is compared with fxgrad's, so that all of them are known to run
the same DSP with the same settings.
Usage: python bench/host_bench.py [--seconds 60] [--reps 7] [--no-dawdreamer]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

URI = "http://calf.sourceforge.net/plugins/MultibandCompressor"
SR = 44100
BLOCK = 1024
CHANNELS = 2
BANDS_ON = {f"bypass{b}": 0.0 for b in range(4)}

# A host-free LV2 runner: dlopen the plugin, instantiate it without features (Calf's
# Multiband Compressor requires none), connect every port, and time run() over the audio.
DSP_LOOP_C = r"""
#include <dlfcn.h>
#include <lv2/core/lv2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now (void) { struct timespec t; clock_gettime (CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

int main (int argc, char** argv)
{
    /* binary bundle uri sr block frames reps in.f32 out.f32 ins outs nports idx=value... */
    if (argc < 13) { fprintf (stderr, "bad arguments\n"); return 2; }
    const char *binary = argv[1], *bundle = argv[2], *uri = argv[3];
    const double sr = atof (argv[4]);
    const long block = atol (argv[5]), frames = atol (argv[6]);
    const int reps = atoi (argv[7]);
    int ins[8], outs[8], nin = 0, nout = 0;
    for (char* s = strtok (argv[10], ","); s; s = strtok (NULL, ",")) ins[nin++] = atoi (s);
    for (char* s = strtok (argv[11], ","); s; s = strtok (NULL, ",")) outs[nout++] = atoi (s);
    const int nports = atoi (argv[12]);
    float* controls = calloc ((size_t) nports, sizeof (float));
    char* isControl = calloc ((size_t) nports, 1);
    for (int a = 13; a < argc; ++a) {
        int index; float value;
        if (sscanf (argv[a], "%d=%f", &index, &value) != 2) return 2;
        controls[index] = value; isControl[index] = 1;
    }
    float* in = malloc (sizeof (float) * (size_t) (nin * frames));
    float* out = calloc ((size_t) (nout * frames), sizeof (float));
    FILE* f = fopen (argv[8], "rb");
    if (! f || fread (in, sizeof (float), (size_t) (nin * frames), f) != (size_t) (nin * frames)) return 3;
    fclose (f);

    void* lib = dlopen (binary, RTLD_NOW);
    if (! lib) { fprintf (stderr, "%s\n", dlerror()); return 4; }
    LV2_Descriptor_Function get = (LV2_Descriptor_Function) dlsym (lib, "lv2_descriptor");
    const LV2_Descriptor* d = NULL;
    for (uint32_t i = 0; get && (d = get (i)) != NULL; ++i)
        if (strcmp (d->URI, uri) == 0) break;
    if (! d) { fprintf (stderr, "no descriptor for %s\n", uri); return 5; }
    const LV2_Feature* features[] = { NULL };

    for (int rep = 0; rep < reps; ++rep) {
        float* meters = malloc (sizeof (float) * (size_t) nports);
        memcpy (meters, controls, sizeof (float) * (size_t) nports);
        LV2_Handle h = d->instantiate (d, sr, bundle, features);
        if (! h) { fprintf (stderr, "instantiate failed\n"); return 6; }
        for (int p = 0; p < nports; ++p)
            d->connect_port (h, (uint32_t) p, isControl[p] ? &meters[p] : NULL);
        if (d->activate) d->activate (h);
        const double start = now();
        for (long offset = 0; offset < frames; offset += block) {
            const long n = frames - offset < block ? frames - offset : block;
            for (int c = 0; c < nin; ++c) d->connect_port (h, (uint32_t) ins[c], in + c * frames + offset);
            for (int c = 0; c < nout; ++c) d->connect_port (h, (uint32_t) outs[c], out + c * frames + offset);
            d->run (h, (uint32_t) n);
        }
        const double seconds = now() - start;
        printf ("%.9f\n", seconds);
        if (d->deactivate) d->deactivate (h);
        d->cleanup (h);
        free (meters);
        if (rep == 0) {
            FILE* o = fopen (argv[9], "wb");
            fwrite (out, sizeof (float), (size_t) (nout * frames), o);
            fclose (o);
        }
    }
    return 0;
}
"""

DAWDREAMER_SCRIPT = r"""
import json, sys, time
import numpy as np
import dawdreamer as daw
uri, block, reps, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
x = np.load(path)
seconds = x.shape[1] / 44100
times = []
for rep in range(reps):
    engine = daw.RenderEngine(44100, block)
    plugin = engine.make_plugin_processor("mb", uri)
    source = engine.make_playback_processor("source", x)
    engine.load_graph([(source, []), (plugin, ["source"])])
    # after load_graph: its prepareToPlay re-creates an LV2 instance from the control ports,
    # which would drop values set before (they reach the ports only in a processBlock)
    names = {plugin.get_parameter_name(i): i for i in range(plugin.get_plugin_parameter_size())}
    for band in range(1, 5):
        plugin.set_parameter(names[f"Bypass {band}"], 0.0)
    start = time.perf_counter()
    engine.render(seconds)
    times.append(time.perf_counter() - start)
    if rep == 0:
        np.save(path.replace(".npy", "-dawdreamer.npy"), engine.get_audio())
print(json.dumps(times))
"""


def lv2_ports(uri):
    """(index, kind, direction, symbol, default) of every port, from lv2info (lilv-utils)."""
    text = subprocess.run(["lv2info", uri], capture_output=True, text=True, check=True).stdout
    binary = re.search(r"Binary:\s+file://(\S+)", text).group(1)
    bundle = re.search(r"Bundle:\s+file://(\S+)", text).group(1)
    ports = []
    chunks = re.split(r"\n\tPort (\d+):\n", text)
    for index, body in zip(chunks[1::2], chunks[2::2]):
        kind = "audio" if "#AudioPort" in body else "control" if "#ControlPort" in body else "other"
        direction = "in" if "#InputPort" in body else "out"
        symbol = re.search(r"Symbol:\s+(\S+)", body).group(1)
        default = re.search(r"Default:\s+(\S+)", body)
        ports.append((int(index), kind, direction, symbol, float(default.group(1)) if default else 0.0))
    return binary, bundle, ports


class DspOnly:
    """The host-free C loop: compiled once, one subprocess per round (timed inside)."""

    def __init__(self, x, workdir):
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("no C compiler (cc) for the DSP-only loop")
        source, self.exe = workdir / "lv2_run.c", workdir / "lv2_run"
        source.write_text(DSP_LOOP_C)
        subprocess.run([compiler, "-O2", "-o", str(self.exe), str(source), "-ldl"], check=True)
        binary, bundle, ports = lv2_ports(URI)
        ins = [i for i, k, d, _, _ in ports if k == "audio" and d == "in"]
        self.outs = [i for i, k, d, _, _ in ports if k == "audio" and d == "out"]
        controls = [f"{i}={BANDS_ON.get(s, default)!r}" for i, k, _, s, default in ports if k == "control"]
        self.input, self.output = workdir / "in.f32", workdir / "out.f32"
        self.input.write_bytes(np.ascontiguousarray(x).tobytes())
        self.args = [
            str(self.exe),
            binary,
            bundle,
            URI,
            str(SR),
            str(BLOCK),
            str(x.shape[1]),
            "1",
            str(self.input),
            str(self.output),
            ",".join(map(str, ins)),
            ",".join(map(str, self.outs)),
            str(len(ports)),
            *controls,
        ]

    def run(self):
        result = subprocess.run(self.args, capture_output=True, text=True, check=True)
        return float(result.stdout.split()[0]), np.fromfile(self.output, dtype=np.float32).reshape(len(self.outs), -1)


class Fxgrad:
    def __init__(self):
        import fxgrad

        self.plugin = fxgrad.load(URI, sample_rate=SR, block_size=BLOCK, channels=CHANNELS)
        for name, value in BANDS_ON.items():
            self.plugin.set(name, value)

    def one_call(self, x):
        self.plugin.reset()
        start = time.perf_counter()
        y = self.plugin.process(x)
        return time.perf_counter() - start, y

    def blocks(self, x):
        self.plugin.reset()
        process, pieces = self.plugin.process, []
        start = time.perf_counter()
        for offset in range(0, x.shape[1], BLOCK):
            pieces.append(process(x[:, offset : offset + BLOCK]))
        seconds = time.perf_counter() - start
        return seconds, np.concatenate(pieces, axis=1)


class DawDreamer:
    """DawDreamer in a subprocess of its own (it carries its own JUCE), one per round."""

    def __init__(self, x, workdir):
        self.path = workdir / "input.npy"
        np.save(self.path, x)
        self.script = workdir / "dawdreamer_run.py"
        self.script.write_text(DAWDREAMER_SCRIPT)

    def run(self):
        result = subprocess.run(
            [sys.executable, str(self.script), URI, str(BLOCK), "1", str(self.path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "DawDreamer failed")
        seconds = json.loads(result.stdout.strip().splitlines()[-1])[0]
        return seconds, np.load(str(self.path).replace(".npy", "-dawdreamer.npy"))


def describe_difference(reference, other):
    n = min(reference.shape[1], other.shape[1])
    if other.shape[0] != reference.shape[0]:
        return f"shape {other.shape}"
    if np.array_equal(reference[:, :n], other[:, :n]):
        return "bit-identical"
    return f"max |diff| {np.abs(reference[:, :n] - other[:, :n]).max():.3g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--no-dawdreamer", action="store_true")
    args = parser.parse_args()

    x = (np.random.default_rng(0).standard_normal((CHANNELS, int(args.seconds * SR))) * 10 ** (-10 / 20)).astype(
        np.float32
    )
    audio_seconds = x.shape[1] / SR
    with tempfile.TemporaryDirectory(prefix="fxgrad-bench-") as tmp:
        workdir = Path(tmp)
        fx = Fxgrad()
        methods = {
            "dsp-only: C loop over the plugin's run()": DspOnly(x, workdir).run,
            f"fxgrad (a): one process() call of {audio_seconds:g} s": lambda: fx.one_call(x),
            f"fxgrad (b): {BLOCK}-sample process() calls": lambda: fx.blocks(x),
        }
        if not args.no_dawdreamer:
            try:
                import dawdreamer  # noqa: F401  (only to know it is there; it runs in a subprocess)

                methods["DawDreamer 0.9.0: render()"] = DawDreamer(x, workdir).run
            except ImportError:
                print("DawDreamer skipped: not installed (pip install dawdreamer==0.9.0)")
        # Rounds interleave the methods, so that a change in machine load hits them alike.
        times = {name: [] for name in methods}
        outputs = {}
        for _ in range(args.reps):
            for name, run in methods.items():
                seconds, out = run()
                times[name].append(seconds)
                outputs.setdefault(name, out)
    names = list(methods)
    reference = outputs[names[1]]
    rows = [
        (name, times[name], "reference" if name == names[1] else describe_difference(reference, outputs[name]))
        for name in names
    ]
    dsp, one_call, blocks = (times[name] for name in names[:3])

    print(
        f"\nCalf Multiband Compressor (bands on), {audio_seconds:.0f} s stereo at {SR} Hz, blocks of {BLOCK}, "
        f"median of {args.reps} runs; RTF = processing time / audio time"
    )
    print(
        f"{'method':44s} {'median s':>9s} {'min s':>8s} {'RTF':>8s} {'x realtime':>11s} {'vs dsp-only':>12s}  "
        "output vs fxgrad"
    )
    dsp_median = statistics.median(dsp)
    for name, times, note in rows:
        median = statistics.median(times)
        print(
            f"{name:44s} {median:9.4f} {min(times):8.4f} {median / audio_seconds:8.5f} {audio_seconds / median:10.1f}x "
            f"{median / dsp_median:11.3f}x  {note}"
        )
    for label, stat in (("medians", statistics.median), ("minima", min)):
        overhead_a = stat(one_call) / stat(dsp) - 1
        overhead_b = stat(blocks) / stat(dsp) - 1
        print(
            f"{'' if stat is min else chr(10)}fxgrad overhead over the plugin's own DSP time ({label}): (a) one call "
            f"{100 * overhead_a:+.1f}%, (b) {BLOCK}-sample calls {100 * overhead_b:+.1f}%  (target <= +5%)"
        )
    per_block_us = (statistics.median(blocks) - statistics.median(one_call)) / (x.shape[1] / BLOCK) * 1e6
    print(f"cost of a Python-level process() call: {per_block_us:.1f} us per 1024-sample block")


if __name__ == "__main__":
    main()
