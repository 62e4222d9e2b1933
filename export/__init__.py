"""sanrt's export tools: PyTorch SAN -> ONNX (and TensorRT engines)."""
