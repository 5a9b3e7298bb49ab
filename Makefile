# fxgrad: `make demo` and `make test` set up a fresh Debian/Ubuntu machine (apt packages, a
# virtual environment, the native build) and then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build/dev
JOBS ?= $(shell nproc)
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# JUCE and the headers its hosting modules need, the LV2/LADSPA SDKs, FST (free VST2 interface
# headers), the third-party plugins the tests, tasks and `fxgrad check` use (LV2, VST3, VST2 and
# LADSPA builds), and the tools (lv2info, analyseplugin, ccache, fluidsynth, soundfonts).
APT_PACKAGES := juce-modules-source juce-tools lv2-dev ladspa-sdk lilv-utils fst-dev \
	libfreetype-dev libjpeg-dev libpng-dev libx11-dev libxext-dev libxinerama-dev libxrandr-dev libxcursor-dev libasound2-dev \
	calf-plugins lsp-plugins-lv2 zam-plugins lsp-plugins-vst dragonfly-reverb-vst x42-plugins guitarix-lv2 caps ccache g++ \
	libsndfile1 fluidsynth timgm6mb-soundfont fluid-soundfont-gm asterisk-core-sounds-en-g722 \
	asterisk-core-sounds-en-wav ffmpeg openttd-openmsx

.PHONY: demo test build deps venv wheel wheel-check install-plugins bench clean

demo: build
	$(PY) -m fxgrad demo

test: build
	$(PY) -m pytest -q -ra tests

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing apt packages: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# torch is pinned first: a CPU build of 2.13.0 lies on these machines' disks, while a bare
# `torch` would pull a multi-GB CUDA build.
$(VENV)/.ready: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q "numpy>=1.22" "soundfile>=0.12" "soxr>=0.3" "pyyaml>=6" "tqdm>=4.60" "matplotlib>=3.5" \
		"pytest>=7" "scipy>=1.8" "pybind11>=2.12" "scikit-build-core>=0.9" cmake ninja dawdreamer==0.9.0
	$(PY) -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'fxgrad-dev.pth').write_text('$(CURDIR)/python\n')"
	@touch $@

venv: deps $(VENV)/.ready

# An in-place build: python/fxgrad/ receives the extension and the plugin bundles.
build: venv
	@[ -f $(BUILD)/build.ninja ] || $(VENV)/bin/cmake -S . -B $(BUILD) -G Ninja -DFXGRAD_INPLACE=ON \
		-DPython_EXECUTABLE=$(CURDIR)/$(PY) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir)
	$(VENV)/bin/cmake --build $(BUILD) -j$(JOBS)

# Copies fxgrad's own plugins into the user's plugin folders (~/.vst3, ~/.lv2).
install-plugins: build
	mkdir -p ~/.vst3 ~/.lv2
	cp -r python/fxgrad/_plugins/*.vst3 ~/.vst3/
	cp -r python/fxgrad/_plugins/*.lv2 ~/.lv2/

wheel: venv
	$(PY) -m pip wheel --no-build-isolation --no-deps . -w dist/

# Builds the wheel, installs it in a fresh venv (with the system site-packages for torch) and
# loads a plugin from the installed package.
wheel-check: wheel
	rm -rf build/wheel-venv && $(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/pip install -q --no-deps dist/fxgrad-*.whl
	build/wheel-venv/bin/pip install -q "numpy>=1.22" pyyaml
	cd /tmp && $(CURDIR)/build/wheel-venv/bin/python -c "import fxgrad, numpy as np; \
		p = fxgrad.load('fxgrad:Gain', channels=1); p.set('gain_db', 6.0); \
		y = p.process(np.ones((1, 64), np.float32)); assert abs(y[0, -1] - 10 ** (6 / 20)) < 1e-5, y[0, -1]; \
		print('wheel OK:', fxgrad.__file__, p)"

bench: build
	$(PY) bench/host_bench.py

clean:
	rm -rf build dist python/fxgrad/_native*.so python/fxgrad/_plugins
