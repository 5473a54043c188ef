"""The floor of Python HTTP overhead: Starlette + uvicorn + orjson that only parses, predicts and answers.

No validation, no auth, no capture, no metrics. Run: python floor_app.py ARTIFACT_DIR PORT
"""

from __future__ import annotations

import sys

import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legion_ci.core.artifact import Artifact


def build(path: str) -> Starlette:
    art = Artifact.open(path)
    model = art.model

    async def invoke(request: Request) -> Response:
        body = orjson.loads(await request.body())
        predictions = model.predict(np.asarray(body["instances"], dtype=np.float64))
        return Response(orjson.dumps({"predictions": predictions.tolist()}), media_type="application/json")

    return Starlette(routes=[Route(f"/api/model/{art.name}/{art.version}/invoke", invoke, methods=["POST"])])


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    uvicorn.run(
        build(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
