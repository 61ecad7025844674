# Two commands on a fresh machine (after `pip install torch==2.13.0`, or any torch >= 2.2):
#   make run    install, then train gSASRec on the embedded ml-100k-text to early stopping and print its test
#               metrics next to stock RecBole SASRec's (from benchmarks/results/ml-100k-text.json)
#   make test   install, then run the test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install run test
install:
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps recbole==1.2.1

run: install
	$(PYTHON) run_recbole_text.py --result_file=saved/first_run.json
	$(PYTHON) benchmarks/first_run.py saved/first_run.json

test: install
	$(PYTHON) -m pytest -q tests
