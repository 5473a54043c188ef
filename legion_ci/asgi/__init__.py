"""The ASGI plumbing the model server and the router share: types, body reading, answers, request ids,
the lifespan loop. Imports nothing else of legion_ci, so both production processes can stand on it."""
