"""Pretrained text recognizers behind one small interface: ``recognize(list of RGB uint8 images) -> texts``."""
