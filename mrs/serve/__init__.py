"""Serving: a trained run frozen into a self-contained model directory, and the code that answers
recommendation requests from it (exact CP ranking, faiss ANN retrieval, CLI, HTTP API).

    run dir ── mrs export ──▶ model dir (factors.safetensors, manifest.json, id lists, index/)
    model dir ── mrs recommend (one user, a batch, an H&M submission) / mrs serve (FastAPI)

Every interface calls :class:`mrs.serve.service.RecommendService`, so the CLI, the server and
``mrs demo`` return the same lists for the same request.
"""
