# Entry points for people and CI. `make test` is the whole test suite (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
LAYERBUILD := target/debug/layerbuild
X86_ZIP := dist/aws-otel-python-amd64-ver-1-20-0.zip
ARM_ZIP := dist/aws-otel-python-arm64-ver-1-20-0.zip

.PHONY: test provision lint rust-test layers python-test smoke bench clean

## Everything CI runs: lint, the default layers built for real, Rust unit and end-to-end
## tests (the network and toolchain ones too, some of which use the built layers), the
## Python tests of the wrapper and shim, and the smoke run of both layers.
test: provision lint layers rust-test python-test smoke

## Install what a fresh machine lacks (apt, pip), or fail at once with the command that fixes it.
provision:
	scripts/provision

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

rust-test: layers
	$(CARGO) test -- --include-ignored

## The default layer for both architectures, from layer.yaml.
layers:
	$(CARGO) build
	$(LAYERBUILD) --out dist
	$(LAYERBUILD) verify $(X86_ZIP) $(ARM_ZIP)

python-test: layers
	LAYERBUILD_LAYER_ZIP=$(X86_ZIP) python3 -m pytest tests/python -q -rs

## A local Lambda cold start and invocation of each layer (arm64: under qemu-user).
smoke: layers
	$(LAYERBUILD) smoke $(X86_ZIP)
	$(LAYERBUILD) smoke $(ARM_ZIP)

bench:
	python3 bench/bench.py

clean:
	rm -rf dist target/bench
