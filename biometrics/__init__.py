"""Voter authentication (CEC pilots 1 and 3): ID documents (MRZ, barcode, JMBG), fingerprint features,
ISO/IEC 19794-2 templates and matching. Pure pipelines: no clock, disk or device.

Empty in this release: the scanner foundation does not use it. Its own issue builds it behind the
secrecy wall of ARCHITECTURE.md (no shared store or sequence with the scanner service).
"""
