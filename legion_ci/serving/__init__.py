"""The model server: ASGI app, JWT auth, input validation, feedback capture, metrics."""
