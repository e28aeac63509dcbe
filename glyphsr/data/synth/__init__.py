"""Synthetic TextZoom: rendered words with per-character ground truth, degraded into LR/HR pairs."""
