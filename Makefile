# make demo: the main job (SAN ViT-B/16 end to end on sample photos, with overlays)
# make test: the test suite (what CI runs)
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

SERVE_STAMP := .venv-triton/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test install serve-env clean
install: $(STAMP) $(SERVE_STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,export,openvino,app,video,batch,dev]"
	rm -f $(VENV)/.installed-* && touch $@

# The Triton serving environment: nvidia-pytriton's tritonserver (Python backend) without its Python
# dependencies, and sanrt's runtime with numpy < 2, which the backend's stub needs.
serve-env: $(SERVE_STAMP)

$(SERVE_STAMP): pyproject.toml
	test -x .venv-triton/bin/python || $(PY) -m venv .venv-triton
	.venv-triton/bin/python -m pip install -q --disable-pip-version-check "numpy<2" -e ".[cpu]"
	.venv-triton/bin/python -m pip install -q --disable-pip-version-check --no-deps "nvidia-pytriton==0.7.0"
	rm -f .venv-triton/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/python benchmarks/main_job.py

test: $(STAMP) $(SERVE_STAMP)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf out build *.egg-info
