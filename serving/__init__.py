"""sanrt on Triton Inference Server, built from the runtime's own code.

    python export/to_triton.py --export out/onnx/vit_b_16 --out out/triton    # repository.py
    python -m sanrt.serving.server out/triton                               # server.py (sanrt-serve)

repository.py packages an export (or engine folder) as a model repository; models.py holds the
Python-backend models that run inside tritonserver (the graphs, and the `san` pipeline over a
`Segmenter`); server.py starts and stops tritonserver from the serving environment.

The folder's contract: torch-free; it imports sanrt.runtime only (never evaluation, model, export
or benchmarks), and models.py only what the Triton stub's environment has (numpy < 2, the runtime).
"""
