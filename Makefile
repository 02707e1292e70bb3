# Two commands set up everything: `make train` and `make test` (the whole suite, as CI
# runs it). `make test-fast` skips the tests that start subprocesses (marker `slow`).
# Extra Hydra overrides go in ARGS, e.g. make train ARGS="trainer.max_epochs=3".
# The tests run in WORKERS processes (pytest-xdist; 0: in this one), one torch thread each.
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
ARGS ?=
WORKERS ?= 2

.PHONY: setup train test test-fast lint check-wheel
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

# The wheel as a user installs it, in a fresh virtual environment (the locked versions,
# from uv's cache), outside the checkout: its packed configs compose and its shipped model loads.
check-wheel: setup
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	$(UV) build --wheel -q -o "$$scratch/dist" && \
	$(UV) venv -q "$$scratch/venv" && \
	$(UV) export --locked --no-dev --no-emit-project --no-hashes -q > "$$scratch/requirements.txt" && \
	$(UV) pip install -q --python "$$scratch/venv/bin/python" -r "$$scratch/requirements.txt" && \
	$(UV) pip install -q --python "$$scratch/venv/bin/python" --no-deps "$$scratch"/dist/*.whl && \
	cd "$$scratch" && ./venv/bin/python -m fmnist_lightning.train --cfg job > job.yaml && \
	grep -q "_target_: fmnist_lightning.models.vgg.VGGStyleCNN" job.yaml && \
	./venv/bin/python -c "import fmnist_lightning.inference.classifier as c; c.load_classifier()" && \
	echo "check-wheel: $$(ls dist) composes its packed configs, loads its shipped model"
