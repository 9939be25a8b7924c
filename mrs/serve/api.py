"""``mrs serve``: the HTTP JSON API (FastAPI; OpenAPI docs at ``/docs``).

    POST /recommend          {"user" | "history", "context", "time", "k", "exclude_seen", ...}
    POST /recommend/batch    {"requests": [...]}
    GET  /items/{id}/similar ?k=12
    GET  /items/similar      ?id=...&k=12: the same for any id (one with ``/``, ``?``, ``..``, ...)
    POST /items              {"id", "features": {modality: [floats]}, "text"}: a new item, through the
                             content projection, recommendable at once with no interaction
    GET  /health             model checksum and counts

Bad input is HTTP 422 with FastAPI's error layout (``{"detail": [{"loc": [...], "msg": ...}]}``),
the ``loc`` naming the field; an unknown item in a path is 404. Numbers must be finite: a ``NaN``
or ``Infinity`` in any float field (``explore_strength``, a feature vector) is a 422 naming it.
``restrict`` is a set: a repeated id counts once. ``history`` (raw item ids, oldest first) needs
a sequential user encoder (:mod:`mrs.serve.sequential`; otherwise 422 naming ``history``): its
state replaces the user's, and the response counts ``history_known`` / ``history_unknown`` ids.

Item ids are any non-empty string (the catalogue's ids come from the data, and ``POST /items``
takes any id too). The path form ``/items/{id}/similar`` reaches an id that is one URL path
segment (no ``/``, not ``.`` or ``..``, which clients collapse); ``GET /items/similar?id=`` with
the id as a query parameter reaches every id, and is what to use for ids from outside.

A ``/recommend`` that costs well under a millisecond (an ANN search, or exact scoring of a small
catalogue) runs on the event loop: the hop to a worker thread and back costs more than the work
(measured in ``experiments/benchmarks/bench_serve_http.py``). One with a ``history`` (a
transformer forward; torch releases the GIL), one that scans a large catalogue (exact or exploring
at > ``INLINE_MAX_ITEMS``), batches, new items and the rest are plain functions that uvicorn runs
in its thread pool, so they never stall the loop. The factors and the faiss index are read-only
while serving, and an added item becomes visible by swapping one reference
(:mod:`mrs.serve.model`).

Access: the API has no users or sessions. ``mrs serve`` binds 127.0.0.1 unless told otherwise;
with ``api_key`` set, mutating routes (``POST /items``) need ``Authorization: Bearer KEY`` or
``X-API-Key: KEY`` (compared in constant time) and answer 401 without it. Reads stay open.
"""
from __future__ import annotations

import hmac
import math
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mrs.errors import MrsError
from mrs.serve.service import RecommendService

MAX_BATCH = 1000
INLINE_MAX_ITEMS = 200_000  # exact scoring of 200K × 64-d is ~2 ms on one core: the most we block the loop


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user: str | None = Field(None, description="raw user id; unknown ids get the context's popular items")
    history: list[str] | None = Field(None, description="raw item ids, oldest first (sequential user encoders only)")
    context: str | None = Field(None, description="label of the 'context' mode; unset = train-frequency mix")
    time: str | None = Field(None, description="label of the 'time' mode; unset = train-frequency mix")
    modes: dict[str, str] | None = Field(None, description="labels of any mode by name")
    k: int = Field(12, ge=1, description="list length (at most the catalogue size)")
    exclude_seen: bool = Field(False, description="drop items the user already has")
    restrict: list[str] | None = Field(None, description="only rank these raw item ids (e.g. in stock)")
    retrieval: Literal["exact", "folded", "two_stage"] | None = Field(None, description="default: the server's")
    explore: Literal["none", "ucb", "thompson"] = Field("none", description="optimism bonus or posterior "
                                                        "sample for uncertain (tail) items; ranks exactly")
    explore_strength: float = Field(1.0, ge=0, description="β: scale of the bonus / sample")

    def mode_values(self) -> dict[str, str | None]:
        out: dict[str, str | None] = dict(self.modes or {})
        for name in ("context", "time"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    requests: list[RecommendRequest] = Field(..., min_length=1, max_length=MAX_BATCH)


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    id: str = Field(..., min_length=1, description="raw id of the new item")
    features: dict[str, list[float]] | None = Field(None, description="a vector per modality the model "
                                                    "uses (a missing one is filled with the mean)")
    text: str | None = Field(None, description="raw text, embedded by the model's text encoder when it is available")


def _json_safe(x: Any) -> Any:
    """FastAPI's 422 echoes the input, and JSON has no NaN / Infinity: name them as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _error(e: MrsError, prefix: tuple = ("body",)) -> JSONResponse:
    """An MrsError message starts with the field at fault (``k: must be ...``)."""
    msg = str(e)
    field = msg.split(":", 1)[0] if ":" in msg and " " not in msg.split(":", 1)[0] else None
    loc = [*prefix, *(field.split(".") if field else [])]
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]})


def _key_check(api_key: str | None):
    """A dependency that refuses a request without the key (a no-op when there is none)."""

    def check(authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> None:
        if api_key is None:
            return
        given = x_api_key or (authorization[7:] if (authorization or "").startswith("Bearer ") else "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong API key "
                                "(send 'Authorization: Bearer KEY')", headers={"WWW-Authenticate": "Bearer"})

    return check


def create_app(service: RecommendService, api_key: str | None = None) -> FastAPI:
    """``api_key``: required on mutating routes (``POST /items``) when given."""
    if api_key is not None and not api_key.strip():
        raise MrsError("api_key: empty (unset MRS_API_KEY, or give a real key)")
    app = FastAPI(title="mrs", description="Context-aware recommendations from an exported mrs model "
                  "(CP tensor score; exact, folded-ANN or two-stage retrieval).", version="1")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own layout, but a non-finite input in it would make the 422 itself a 500
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})

    def one(req: RecommendRequest) -> dict:
        if req.user is None and req.history is None:
            raise MrsError("user: give a user id or a history")
        return service.recommend(req.user, req.mode_values(), req.k, req.exclude_seen, req.restrict,
                                 req.retrieval, history=req.history, explore=req.explore,
                                 explore_strength=req.explore_strength)

    def cheap(req: RecommendRequest) -> bool:
        if req.history is not None:
            return False  # a transformer forward: in a worker thread (torch releases the GIL)
        scans_catalogue = (req.retrieval or service.retrieval) == "exact" or req.explore != "none"
        return not scans_catalogue or service.model.n_items <= INLINE_MAX_ITEMS

    @app.post("/recommend")
    async def recommend(req: RecommendRequest):
        try:
            return one(req) if cheap(req) else await run_in_threadpool(one, req)
        except MrsError as e:
            return _error(e)

    @app.post("/recommend/batch")
    def recommend_batch(req: BatchRequest):
        out = []
        for j, r in enumerate(req.requests):
            try:
                out.append(one(r))
            except MrsError as e:
                return _error(e, ("body", "requests", j))
        return {"results": out}

    @app.get("/items/{item_id}/similar")
    def similar(item_id: str, k: int = Query(12, ge=1)):
        if service.model.item_idx(item_id) is None:
            raise HTTPException(status_code=404, detail=f"id: unknown item {item_id!r}")
        try:
            return service.similar(item_id, k)
        except MrsError as e:
            return _error(e, ("query",))

    @app.get("/items/similar")
    def similar_by_query(id: str = Query(..., min_length=1, description="raw item id: any string, "
                                         "also one the path form cannot reach"),
                         k: int = Query(12, ge=1)):
        return similar(id, k)

    @app.post("/items", status_code=201, dependencies=[Depends(_key_check(api_key))])
    def add_item(item: NewItem):
        try:
            return service.add_item(item.id, item.features, item.text)
        except MrsError as e:
            return _error(e)

    @app.get("/health")
    def health():
        return service.health()

    return app
