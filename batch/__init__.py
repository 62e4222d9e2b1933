"""Batch segmentation on Ray Data (sanrt-batch)."""
