# `make demo`, `make test`, `make bench`: each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROOT := runs/singan/demo

.PHONY: demo test bench lint clean

$(BIN)/lightning: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/lightning
	$(BIN)/lightning fit --config configs/singan/demo.yaml --trainer.default_root_dir=$(DEMO_ROOT)
	$(BIN)/lightning predict --config configs/singan/demo.yaml --trainer.default_root_dir=$(DEMO_ROOT) \
		--ckpt_path=$(DEMO_ROOT)/checkpoints/last.ckpt

test: $(BIN)/lightning
	WANDB_MODE=disabled $(BIN)/ruff check .
	WANDB_MODE=disabled $(BIN)/python -m pytest

bench: $(BIN)/lightning
	$(BIN)/python -m benchmarks.singan_speed
	$(BIN)/python -m benchmarks.metrics_speed
	$(BIN)/python -m benchmarks.padain_speed

clean:
	rm -rf runs lightning_logs
