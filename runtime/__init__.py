"""sanrt's torch-free runtime: numpy + ONNX Runtime / TensorRT / OpenVINO only."""
