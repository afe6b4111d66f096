# Entry points for people and CI. `make test` is the whole test suite (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
# One profile for everything: the quick start's `cargo run --release`, the tests, the install
# check and the benchmarks share one set of compiled dependencies in target/release.
PROFILE := --release
LAYERBUILD := target/release/layerbuild
X86_ZIP := dist/aws-otel-python-amd64-ver-1-20-0.zip
ARM_ZIP := dist/aws-otel-python-arm64-ver-1-20-0.zip

.PHONY: test provision lint rust-test layers install-check python-test smoke bench clean

## Everything CI runs: lint, the default layers built for real, Rust unit and end-to-end
## tests (the network and toolchain ones too, some of which use the built layers), the
## install as the README gives it, the Python tests of the wrapper and shim, and the smoke
## run of both layers.
test: provision lint layers rust-test install-check python-test smoke

## Install what a fresh machine lacks (apt, pip), or fail at once with the command that fixes it.
provision:
	scripts/provision

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy $(PROFILE) --all-targets -- -D warnings

rust-test: layers
	$(CARGO) test $(PROFILE) -- --include-ignored

## The default layer for both architectures, from layer.yaml.
layers:
	$(CARGO) build $(PROFILE)
	$(LAYERBUILD) --out dist
	$(LAYERBUILD) verify $(X86_ZIP) $(ARM_ZIP)

## The README's install command, into a temp root: it must build from the lock alone and give
## a working binary. CARGO_TARGET_DIR makes it reuse the release build above instead of
## compiling everything again in a temp folder.
install-check: layers
	root=$$(mktemp -d) && trap 'rm -rf "$$root"' EXIT && \
	CARGO_TARGET_DIR="$(CURDIR)/target" $(CARGO) install --locked --path . --root "$$root" --quiet && \
	"$$root/bin/layerbuild" --version

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
