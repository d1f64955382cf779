# Orrery — `make demo` and `make test` work on a fresh Debian machine: they install what
# they need (Erlang, Elixir, editors for the editor tests) with apt-get when it is missing.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO ?= cargo
ORRERY := target/release/orrery

.PHONY: all deps build demo test test-rust test-editors lint bench clean vsix

all: build

## deps: install Erlang and Elixir (Debian packages) when missing.
deps:
	@if ! command -v elixir >/dev/null || ! command -v erl >/dev/null; then \
	  echo "installing Erlang and Elixir (apt-get)…"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq erlang elixir >/dev/null; \
	fi
	@erl -noshell -eval 'io:format("Erlang/OTP ~s~n", [erlang:system_info(otp_release)]), halt().'
	@elixir --version | tail -1

build:
	$(CARGO) build --release

## demo: start the bundled example app, attach, and walk through what Orrery shows.
demo: deps build
	$(ORRERY) demo

## test: lint and every test (real nodes, real clients).
test: deps lint test-rust test-editors

test-rust:
	$(CARGO) build --release
	$(CARGO) test --release -- --test-threads=4

## test-editors: Microsoft's DAP test client and real editors against real nodes
## (each script installs what it needs).
test-editors: build
	bash tests/dap-testsupport/run.sh
	bash editors/neovim/test.sh
	ORRERY_TEST_DAP=1 bash editors/vscode/test.sh
	ORRERY_TEST_DAP=1 bash editors/emacs/test.sh

## vsix: package the VS Code extension (offline) as editors/vscode/orrery.vsix.
vsix:
	bash editors/vscode/build.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

## bench: RPC and agent benchmarks against real nodes, printed as a table.
bench: deps build
	$(CARGO) run --release --bin orrery-bench
	$(CARGO) run --release --bin orrery-bench-debug
	$(CARGO) run --release --bin orrery-bench-swap

clean:
	$(CARGO) clean
