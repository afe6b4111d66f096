# Entry points for people and CI. `make test` is the whole test suite (see README.md).
SHELL := /bin/bash
CARGO ?= cargo
# One profile for everything: the quick start's `cargo run --release`, the tests, the install
# check and the benchmarks share one set of compiled dependencies in target/release.
PROFILE := --release
LAYERBUILD := target/release/layerbuild
X86_ZIP := dist/aws-otel-python-amd64-ver-1-20-0.zip
ARM_ZIP := dist/aws-otel-python-arm64-ver-1-20-0.zip
# The layer this machine can run natively (the RIE tests run it; the other one is used
# for its wrong-architecture collector).
HOST_ZIP := $(if $(filter aarch64 arm64,$(shell uname -m)),$(ARM_ZIP),$(X86_ZIP))
# The layer for the runtimes Lambda offers today, python3.10 to python3.13.
EXAMPLE := examples/python3.10-3.13/layer.yaml
EX_X86_ZIP := dist/example/aws-otel-python-py310-313-amd64-ver-1-20-0.zip
EX_ARM_ZIP := dist/example/aws-otel-python-py310-313-arm64-ver-1-20-0.zip
# The current layer: OpenTelemetry Python 1.45.1 / 0.66b1 on python3.10 to python3.14.
CURRENT := examples/current/layer.yaml
CUR_X86_ZIP := dist/current/aws-otel-python-current-amd64-ver-1-45-1.zip
CUR_ARM_ZIP := dist/current/aws-otel-python-current-arm64-ver-1-45-1.zip
CUR_HOST_ZIP := $(if $(filter aarch64 arm64,$(shell uname -m)),$(CUR_ARM_ZIP),$(CUR_X86_ZIP))

.PHONY: test provision lint collector-test rust-test layers current install-check python-test rie smoke example current-smoke bench clean

## Everything CI runs: lint, the collector's Go tests, the default layers built for real, Rust unit and end-to-end
## tests (the network and toolchain ones too, some of which use the built layers), the
## install as the README gives it, the Python tests of the wrapper and shim, the layer under
## AWS's Runtime Interface Emulator, the smoke run of both layers, the python3.10-3.13
## example built and smoked, and the current layer (examples/current) built, verified and smoked.
## (`lint` leaves target/release/layerbuild built without `publish`; `layers` builds it again.)
test: provision lint collector-test layers current rust-test install-check python-test rie smoke example current-smoke

## Install what a fresh machine lacks (apt, pip), or fail at once with the command that fixes it.
## Then fetch and cache what the RIE tests run: AWS's Runtime Interface Emulator (go install),
## moto's server (a venv) and Lambda's runtime packages for python3.8/3.9 and 3.12/3.13 (reused
## when cached).
provision:
	scripts/provision
	python3 tests/rie/provision.py

## Both feature sets the README offers: the default, and `--no-default-features` (no
## publish/attach), built and linted so that neither rots unseen.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy $(PROFILE) --all-targets -- -D warnings
	$(CARGO) clippy $(PROFILE) --no-default-features --all-targets -- -D warnings
	$(CARGO) build $(PROFILE) --no-default-features
	@unformatted=$$(gofmt -l collector) && test -z "$$unformatted" || \
	{ echo "gofmt: these files need \`gofmt -w\`: $$unformatted" >&2; exit 1; }

## The collector's Go tests: vet, then every test under the race detector (the lifecycle
## against a fake Lambda, the drain, the SHUTDOWN bound, the fallbacks, the configs).
collector-test:
	cd collector && go vet ./... && go test -race ./...

rust-test: layers current
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
	LAYERBUILD_LAYER_ZIP=$(X86_ZIP) LAYERBUILD_BIN=$(CURDIR)/$(LAYERBUILD) python3 -m pytest tests/python -q -rs

## The default layer (python3.9, python3.8) and the current layer (python3.12, python3.13) under
## AWS's Runtime Interface Emulator in private namespaces, with moto's X-Ray and S3 (needs root).
rie: layers current
	LAYERBUILD_RIE_ZIP=$(HOST_ZIP) LAYERBUILD_RIE_CURRENT_ZIP=$(CUR_HOST_ZIP) python3 -m pytest tests/rie -q -rsxX

## A local Lambda cold start and invocations of each layer. The other architecture's layer
## runs under qemu-user with a Debian root's CPython (python3.9; 3.8 is checked statically),
## prepared once with debootstrap and kept in the cache.
smoke: layers
	$(LAYERBUILD) smoke $(X86_ZIP)
	$(LAYERBUILD) smoke $(ARM_ZIP) --foreign-python require

## The python3.10-3.13 layer: built, verified, and smoked on every runtime this host can run:
## natively under each interpreter found (pyenv's here), and the other architecture under
## qemu-user with Debian's 3.11 (bookworm) and 3.13 (trixie); 3.10 and 3.12, which no Debian
## suite has, are checked statically.
example:
	$(CARGO) build $(PROFILE)
	$(LAYERBUILD) --spec $(EXAMPLE) --source-root . --out dist/example
	$(LAYERBUILD) verify $(EX_X86_ZIP) $(EX_ARM_ZIP)
	$(LAYERBUILD) plan --spec $(EXAMPLE) --source-root . | grep -A6 'python size' | head -14
	$(LAYERBUILD) smoke $(EX_X86_ZIP) --free-ports --foreign-python require
	$(LAYERBUILD) smoke $(EX_ARM_ZIP) --free-ports --foreign-python require

## The current layer (examples/current: OpenTelemetry 1.45.1 / 0.66b1, python3.10 to 3.14), both
## architectures, with bytecode for every runtime (the spec says `bytecode: always`): python3.14's
## CPython comes from a Debian forky root, prepared once and cached (`layerbuild python fetch`).
current:
	$(CARGO) build $(PROFILE)
	$(LAYERBUILD) python fetch python3.14
	$(LAYERBUILD) --spec $(CURRENT) --source-root . --out dist/current
	$(LAYERBUILD) verify $(CUR_X86_ZIP) $(CUR_ARM_ZIP)

## The current layer run: on x86_64 under every runtime (pyenv's 3.10-3.13, forky's 3.14); the
## arm64 layer under qemu with Debian's 3.11 (bookworm), 3.13 (trixie) and 3.14 (forky), 3.10 and
## 3.12 checked statically.
current-smoke: current
	$(LAYERBUILD) smoke $(CUR_X86_ZIP) --free-ports --foreign-python require
	$(LAYERBUILD) smoke $(CUR_ARM_ZIP) --free-ports --foreign-python require

## The layer's benchmarks, then the collector's lifecycle against four backends (at once,
## 1 s late, 503, unreachable), 20 invocations each: one table line per backend.
bench:
	python3 bench/bench.py
	cd collector && go test -run '^$$' -bench Backends -benchtime 20x .

clean:
	rm -rf dist target/bench
