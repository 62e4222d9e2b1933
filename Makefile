# make demo: the main job (SAN ViT-B/16 end to end on sample photos, with overlays)
# make test: the test suite (what CI runs)
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test install clean
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,export,openvino,dev]"
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/python benchmarks/main_job.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf out build *.egg-info
