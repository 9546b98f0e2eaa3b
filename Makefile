# earwitness — the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
LOCK := requirements/ci.lock

.PHONY: demo test test-heavy test-fast lint format venv venv-gpu kafka-jars kafka-start kafka-stop bench clean helm-check images images-gpu

## demo: the main job on embedded defaults (local broker, bundled sample, CPU engine without a GPU)
demo: venv
	scripts/demo

## test: the whole suite (unit, broker, engine, slow, chart, Chromium), but the three tiers
## that build what they test: `images`, `s3` and `firefox` (make test-heavy)
test: venv kafka-jars
	$(BIN)/pytest -m "not images and not s3 and not firefox"

## test-heavy: the tiers that build what they test, cached under ~/.cache/earwitness: `s3`
## (versitygw from the Go proxy, ~10 min once), `images` (buildah, ~5-20 min cold, ~2 warm)
## and `firefox` (the console's browser walk in Firefox; geckodriver from crates.io, 4-15 min once)
test-heavy: venv kafka-jars
	scripts/install-versitygw
	scripts/install-geckodriver
	$(BIN)/pytest -m "images or s3 or firefox"

## test-fast: unit tier only (no broker, no engine)
test-fast: venv
	$(BIN)/pytest -m "not kafka and not engine and not slow and not images"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy earwitness stream windowing sinks ingest console export

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## venv: the pinned environment of requirements/ci.lock, installed with uv
venv: $(VENV)/.installed
$(VENV)/.installed: $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip sync $(LOCK)
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install --no-deps -e .
	touch $@

## venv-gpu: the GPU engine (vLLM 0.26.0, torch 2.11, CUDA wheels) of helm/requirements/analyzer-gpu.lock
venv-gpu: .venv-gpu/.installed
.venv-gpu/.installed: helm/requirements/analyzer-gpu.lock pyproject.toml
	test -x .venv-gpu/bin/python || $(PY) -m venv .venv-gpu
	.venv-gpu/bin/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	VIRTUAL_ENV=.venv-gpu .venv-gpu/bin/uv pip sync helm/requirements/analyzer-gpu.lock
	VIRTUAL_ENV=.venv-gpu .venv-gpu/bin/uv pip install --no-deps -e .
	touch $@

## kafka-jars: the broker's jars from Maven Central (kafka/pom.xml → kafka/libs/)
kafka-jars: kafka/libs/.resolved
kafka/libs/.resolved: kafka/pom.xml
	rm -rf kafka/libs
	mvn -q -B -Dstyle.color=never -f kafka/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=libs
	touch $@

kafka-start: kafka-jars
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

## helm-check: pinned helm, then lint, render and validate the chart offline (tests/helm)
helm-check: venv
	scripts/install-helm >/dev/null
	$(BIN)/pytest tests/helm

## images: the CPU images (analyzer-cpu, alerts, ingest, console) as OCI archives in build/images/
images:
	scripts/build-images

## images-gpu: the GPU analyzer image too (~10 GB of CUDA wheels)
images-gpu:
	scripts/build-images --gpu

bench: venv kafka-jars
	$(BIN)/python bench/windowing.py

clean:
	-scripts/kafka-local stop
	rm -rf $(VENV) kafka/libs .pytest_cache .ruff_cache .mypy_cache .hypothesis
