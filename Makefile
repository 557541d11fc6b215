# Two entry points, as in the README:
#   make demo   set up .venv and run the tour (the main job: one HTML report, about a minute on 2 quiet cores once set up)
#   make test   set up .venv and run the test suite (what .ci/run calls)
# torch is installed first, an exact version, so that the package's own range (torch>=2.4)
# does not pull whatever is newest; override TORCH to use your own build (its words go to pip
# as they are: on plain PyPI torch for Linux x86-64 is the multi-GB CUDA build, and
# TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" gets the CPU one).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e ".[test]"
	# an editable install leaves the sources uncompiled, and where PYTHONDONTWRITEBYTECODE is
	# set (many containers) every process would compile them again: 0.13 s of each command
	$(PY) -m compileall -q src
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/optimlab tour --out optimlab-tour

# one worker per core (at most 4: each holds its own torch); the suite is independent tests
test: setup
	$(PY) -m pytest -n auto --maxprocesses 4

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
