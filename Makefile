# `make demo`, `make test`, `make bench`: each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_ROOT := runs/singan/demo
ANALOGY_ROOT := runs/structural_analogy/demo
VIDEO_ROOT := runs/hp_vae_gan/demo
ANALOGY_APPS := analogy texture_transfer style_transfer text_transfer paint_to_image
# the applications' configs at a CPU size: 64x64, 200 iterations per scale (the paper: 220x220, 20,000)
ANALOGY_CPU := --data.image_size=64 --model.iters_per_scale=200 --trainer.accelerator=cpu --data.num_samples=4

.PHONY: demo analogy-demo video-demo test test-fast bench lint clean

$(BIN)/lightning: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/lightning
	$(BIN)/lightning fit --config configs/singan/demo.yaml --trainer.default_root_dir=$(DEMO_ROOT)
	$(BIN)/lightning predict --config configs/singan/demo.yaml --trainer.default_root_dir=$(DEMO_ROOT) \
		--ckpt_path=$(DEMO_ROOT)/checkpoints/last.ckpt

analogy-demo: $(BIN)/lightning
	for app in $(ANALOGY_APPS); do \
		$(BIN)/lightning fit --config configs/structural_analogy/$$app.yaml $(ANALOGY_CPU) \
			--trainer.default_root_dir=$(ANALOGY_ROOT)/$$app && \
		$(BIN)/lightning predict --config configs/structural_analogy/$$app.yaml $(ANALOGY_CPU) \
			--trainer.default_root_dir=$(ANALOGY_ROOT)/$$app --ckpt_path=$(ANALOGY_ROOT)/$$app/checkpoints/last.ckpt \
			|| exit 1; \
	done
	$(BIN)/python scripts/analogy_figure.py $(ANALOGY_ROOT) assets/readme/analogy_demo.png

video-demo: $(BIN)/lightning
	$(BIN)/lightning fit --config configs/hp_vae_gan/demo.yaml --trainer.default_root_dir=$(VIDEO_ROOT)
	$(BIN)/lightning predict --config configs/hp_vae_gan/demo.yaml --trainer.default_root_dir=$(VIDEO_ROOT) \
		--ckpt_path=$(VIDEO_ROOT)/checkpoints/last.ckpt

# two test processes (pytest-xdist), each computing with one thread; TEST_WORKERS=0 runs them in this one
TEST_WORKERS ?= 2
PYTEST := WANDB_MODE=disabled $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test: $(BIN)/lightning
	WANDB_MODE=disabled $(BIN)/ruff check .
	$(PYTEST)

# the development tier: everything but the tests marked slow
test-fast: $(BIN)/lightning
	WANDB_MODE=disabled $(BIN)/ruff check .
	$(PYTEST) -m "not slow"

bench: $(BIN)/lightning
	$(BIN)/python -m benchmarks.singan_speed --adam-implementations default foreach fused
	$(BIN)/python -m benchmarks.singan_images
	$(BIN)/python -m benchmarks.metrics_speed
	$(BIN)/python -m benchmarks.padain_speed
	$(BIN)/python -m benchmarks.padain_speed --task segmentation
	$(BIN)/python -m benchmarks.analogy_speed
	$(BIN)/python -m benchmarks.ost_speed
	$(BIN)/python -m benchmarks.disentangle_speed
	$(BIN)/python -m benchmarks.hp_vae_gan_speed
	$(BIN)/python -m benchmarks.bf16_speed

clean:
	rm -rf runs lightning_logs
