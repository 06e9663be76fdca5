"""The public test kit: an in-memory RouterOS REST emulator and its fault modes.

It imports nothing of the product, so tests (and the demo) meet the job only where a real
router would: over HTTP.
"""
