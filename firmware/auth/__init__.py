"""The authentication service (CEC pilots 1 and 3): register extract, voter flow, store, report.

Behind the secrecy wall of ARCHITECTURE.md: nothing here imports the scanner service, and nothing it
stores or logs shares an id, a sequence or a per-event clock order with the scanner's store and log.
"""
