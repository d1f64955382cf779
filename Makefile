# Orrery — `make demo` and `make test` work on a fresh Debian machine: they install what
# they need (Erlang, Elixir, editors for the editor tests) with apt-get when it is missing.
# `make test` also runs the BEAM version matrix: the Rust tests and the DAP test client on
# this machine's Erlang/Elixir and, in cached Debian roots, on trixie's and sid's (needs root
# or password-less sudo; skipped with a message without).

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO ?= cargo
ORRERY := target/release/orrery
# Debian suites of the version matrix: bookworm (OTP 25, Elixir 1.14), trixie (OTP 27,
# Elixir 1.18), sid (OTP 29, Elixir 1.20 when written). `make test-matrix MATRIX=trixie`.
MATRIX ?= bookworm trixie sid

.PHONY: all deps build demo test test-rust test-matrix matrix-clean test-editors \
	test-dap-client test-editor-clients lint bench clean vsix

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

## test: lint, the editor tests (this machine's Erlang/Elixir), then the version matrix
## (Rust tests + DAP test client per suite), whose summary table comes last.
test: deps lint test-editor-clients test-matrix

## test-rust: the Rust tests on this machine's Erlang/Elixir only.
test-rust:
	$(CARGO) build --release
	$(CARGO) test --release -- --test-threads=4

## test-matrix: the Rust tests and Microsoft's DAP test client on every suite of $(MATRIX):
## this machine's natively, the others in Debian roots built with debootstrap and cached in
## $${XDG_CACHE_HOME:-$$HOME/.cache}/orrery-matrix (see tests/matrix/run.sh). Prints a table
## (suite, OTP, Elixir, passed, failed, time); logs in target/matrix/.
test-matrix: deps build
	MATRIX="$(MATRIX)" bash tests/matrix/run.sh

## matrix-clean: forget the cached Debian roots (the next test-matrix builds them again).
matrix-clean:
	$(SUDO) rm -rf --one-file-system "$${XDG_CACHE_HOME:-$$HOME/.cache}/orrery-matrix"

## test-editors: Microsoft's DAP test client and real editors against real nodes
## (each script installs what it needs), on this machine's Erlang/Elixir.
test-editors: test-dap-client test-editor-clients

test-dap-client: build
	bash tests/dap-testsupport/run.sh

test-editor-clients: build
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
