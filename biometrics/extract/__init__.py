"""Minutiae extraction: a grey fingerprint image -> minutiae -> `FingerprintTemplate`, with an image quality score.

    from biometrics.extract import extract
    extraction = extract(pixels, dpi=500.0)          # pixels: uint8 H x W
    extraction.template                              # FingerprintTemplate, coordinates in the input's pixels
    extraction.quality, extraction.retry             # 0..100 NFIQ-like score; True: ask for another capture

The pipeline is a chain of named stages (`STAGES`), each with its parameters in `ExtractionParams`; pass
`dump=callable(stage_name, image)` to see every stage's image (SourceAFIS's transparency hook). Pure: no disk,
no clock.
"""

from biometrics.extract.pipeline import STAGES, Extraction, ExtractionParams, extract

__all__ = ["STAGES", "Extraction", "ExtractionParams", "extract"]
