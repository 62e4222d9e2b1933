"""sanrt's web app: a Gradio page over one shared `Segmenter` (sanrt-app)."""
