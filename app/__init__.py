"""sanrt's web app (sanrt-app): a Gradio page and API endpoint over one shared `Segmenter` per export.

    sanrt-app --export out/onnx/vit_b_16        # python -m sanrt.app.server; http://127.0.0.1:7860

server.py builds the page (photo, class names, vocabulary expansion, overlay or mask view, model,
built-in vocabularies, legend, timings, label PNG and JSON downloads) and the `segment` endpoint.

The folder's contract: torch-free; it imports sanrt.runtime only (never evaluation, serving, model,
export or benchmarks), and Gradio only inside the app, which is the optional `app` extra.
"""
