# Two promises on a fresh machine: `make notebooks` and `make test`. Each creates or
# refreshes the local virtual environment (.venv) first; nothing else is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# The venv's bin first on PATH, so Jupyter kernels started by papermill/nbval use the venv.
RUN := PATH="$(BIN):$$PATH" MPLBACKEND=Agg

.PHONY: setup test test-browser lab notebooks notebooks-inplace bench paper backbones explainers lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Unit tests and the notebooks under nbval (checked outputs must match the committed ones).
test: setup
	$(RUN) $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env

## The explorer widget in a real front end: JupyterLab in headless Chromium, driven by Selenium
## (tests/browser/). Installs Debian's chromium and chromium-driver when missing (needs root/apt);
## `make test` skips this test. Screenshots land in outputs/browser/.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
test-browser: setup
	test -x $(CHROMIUM) -a -x $(CHROMEDRIVER) || apt-get install -y chromium chromium-driver || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	$(BIN)/python -c "import selenium" 2>/dev/null || $(BIN)/python -m pip install --quiet selenium
	PATH="$(BIN):$$PATH" TTAME_BROWSER_TESTS=1 TTAME_CHROMIUM=$(CHROMIUM) TTAME_CHROMEDRIVER=$(CHROMEDRIVER) \
		$(BIN)/python -m pytest tests/browser -v -rs

## Open the notebooks in JupyterLab from the project's environment (widgets live, not static;
## --allow-root only when run as root, e.g. in a container).
lab: setup
	PATH="$(BIN):$$PATH" $(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

## Execute every notebook in order with papermill into outputs/notebooks/.
notebooks: setup
	$(RUN) $(BIN)/python scripts/run_notebooks.py --params params/cpu.yaml

## Re-execute the notebooks in place so the committed copies carry fresh outputs.
notebooks-inplace: setup
	$(RUN) $(BIN)/python scripts/run_notebooks.py --inplace

## Benchmarks: JSON and Markdown under outputs/bench/ (latency of explain on the paper's
## backbones; then every metric, with 95 % bootstrap intervals, for T-TAME, the baselines and the
## model-agnostic rows on 200 held-out scenes per shipped backbone; then the two ROAD imputation
## solvers against each other; then resident memory over 10,000 explained images per method;
## see the README for its run time).
bench: setup
	$(RUN) $(BIN)/python benchmarks/latency.py
	$(RUN) $(BIN)/python benchmarks/evaluate.py
	$(RUN) $(BIN)/python benchmarks/road_solvers.py --sizes 224 --fractions 10 90 road --batches 1 16 64
	$(RUN) $(BIN)/python benchmarks/memory.py

## One row of the paper's table on a GPU machine with ImageNet (scripts/paper.py; README "Reproducing the
## paper"): make paper DATA=/path/to/imagenet BACKBONE=resnet50 (or vgg16, vit_b_16).
BACKBONE ?= resnet50
paper: setup
	@test -n "$(DATA)" || { echo "usage: make paper DATA=/path/to/imagenet [BACKBONE=resnet50|vgg16|vit_b_16]"; exit 2; }
	$(RUN) $(BIN)/python scripts/paper.py --data "$(DATA)" --backbone $(BACKBONE)

## Retrain the offline world's shipped models (overwrites data/; each run alone on the CPU).
## scenes_vit distils from scenes_cnn, so the CNN comes first.
backbones: setup
	$(RUN) $(BIN)/python scripts/train_backbone.py scenes_cnn --epochs 40 --scenes-per-epoch 4000 --lr 3e-3
	$(RUN) $(BIN)/python scripts/train_backbone.py scenes_vit --epochs 30 --scenes-per-epoch 4000 --lr 1e-3 --teacher scenes_cnn \
		--feature-distill blocks.2:layer2 blocks.4:layer3 blocks.5:layer4 --feature-weight 50

## Recipes chosen on validation scenes (README, "The offline world"): the scene explainers use the
## paper's B x B loss scope; the ImageNet explainer trains on the real-photo pool with each image's own
## map regularised, from its classifier (each command is the one recorded in the explainer's JSON).
explainers: setup
	$(RUN) $(BIN)/python scripts/train_explainer.py scenes_cnn --size 64 --train-images 12000 --epochs 6 --batch-size 32 --regularize batch
	$(RUN) $(BIN)/python scripts/train_explainer.py scenes_vit --size 64 --train-images 4000 --epochs 4 --batch-size 32 --regularize batch
	$(RUN) $(BIN)/python scripts/train_explainer.py tf_efficientnet_lite0 --weights DEFAULT --data photos --size 224 \
		--train-images 32000 --epochs 4 --steps-per-epoch 100 --batch-size 32 --lr 2e-3 --regularize own \
		--layers blocks.4 blocks.5 bn2 --init head

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ttame_lib tests scripts benchmarks

clean:
	rm -rf $(VENV) outputs
