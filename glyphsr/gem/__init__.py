"""The Glyph Extraction Module (GEM): training-free per-character glyph masks from HR text images.

Not implemented yet (see the project's issues): foreground, attention providers, key points, anchors,
segmenters and selection will live here as pure functions and small classes over batches.
"""
