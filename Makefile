# Two commands on a fresh machine (after `pip install torch==2.13.0`, or any torch >= 2.2):
#   make run    install, then train + evaluate the embedded default (SASRec on ml-100k-text) and print metrics
#   make test   install, then run the test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install run test
install:
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps recbole==1.2.1

run: install
	$(PYTHON) run_recbole_text.py

test: install
	$(PYTHON) -m pytest -q tests
