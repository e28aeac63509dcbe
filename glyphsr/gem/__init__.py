"""The Glyph Extraction Module (GEM): training-free per-character glyph masks from HR text images.

Functions and small classes over batches: ``foreground`` (K-means, text coverage), ``attention`` (``ctc``) and
``stt`` (the per-character attention), ``ctc_align``, ``keypoints`` (key points, cells, anchors), ``segmenters``
(``classical``, ``sam``), ``selection``, and ``extractor.GlyphExtractor``, which runs them in order; ``metrics``
measures masks against ground truth. ``gem-extract`` (:mod:`glyphsr.pipelines.gem_extract`) runs it over an LMDB.
"""
