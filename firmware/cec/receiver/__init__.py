"""The CEC's receiver: an ASGI service (Starlette on uvicorn) that takes the boxes' signed documents
(wire contract in firmware/common/transmission/documents.py), checks them against the provisioned
device keys, stores each exactly once and answers every delivery with the first, signed receipt.

Not one of the box's services: nothing under firmware/scanner or firmware/auth imports it.
"""
