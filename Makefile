# Two commands set up everything: `make train` and `make test` (the whole suite, as CI
# runs it). `make test-fast` skips the tests that start subprocesses (marker `slow`).
# Extra Hydra overrides go in ARGS, e.g. make train ARGS="trainer.max_epochs=3".
# The tests run in WORKERS processes (pytest-xdist; 0: in this one), one torch thread each.
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
ARGS ?=
WORKERS ?= 2

.PHONY: setup train test test-fast lint
setup:
	@command -v uv >/dev/null 2>&1 || test -x "$(UV)" || python3 -m pip install --user uv
	$(UV) sync --locked --all-extras

train: setup
	$(UV) run --locked python -m fmnist_lightning.train $(ARGS)

test: setup
	$(UV) run --locked pytest -n $(WORKERS) --dist worksteal $(ARGS)

test-fast: setup
	$(UV) run --locked pytest -n $(WORKERS) --dist worksteal -m "not slow" $(ARGS)

lint: setup
	$(UV) run --locked ruff check .
