# Entry points for people and CI. `make test` is the whole test suite (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
LAYERBUILD := target/debug/layerbuild
X86_ZIP := dist/aws-otel-python-amd64-ver-1-20-0.zip
ARM_ZIP := dist/aws-otel-python-arm64-ver-1-20-0.zip

.PHONY: test lint rust-test layers python-test bench clean

## Everything CI runs: lint, Rust unit and end-to-end tests (network ones too),
## the default layers built for real, and the Python tests of the wrapper and shim.
test: lint rust-test layers python-test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

rust-test:
	$(CARGO) test -- --include-ignored

## The default layer for both architectures, from layer.yaml.
layers:
	$(CARGO) build
	$(LAYERBUILD) --out dist
	$(LAYERBUILD) verify $(X86_ZIP) $(ARM_ZIP)

python-test: layers
	LAYERBUILD_LAYER_ZIP=$(X86_ZIP) python3 -m pytest tests/python -q -rs

bench:
	bench/run.sh

clean:
	rm -rf dist target/bench
