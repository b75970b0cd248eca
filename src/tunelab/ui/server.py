"""The dashboard's ASGI app: a JSON API over the run index and the run directories, and one static page.

    GET /api/runs                        the index rows (filters as `tunelab runs list`: task, status, kind, since,
                                         where, all)
    GET /api/runs/{id}                   run.json, metrics.json, the recipe, its files, its trials or folds
    GET /api/runs/{id}/history?after=N   metrics.jsonl from record N on (the page polls it while a run trains)
    GET /api/runs/{id}/files/{name}      a file of the run directory (nothing outside it)
    GET /api/compare?ids=a,b             metrics side by side, the recipe fields that differ, every run's history
    GET /                                the page (static/index.html, app.js: no build step, nothing from the network)

A run's id is the first 12 hex digits of the sha256 of its absolute path: stable, and no path in a URL to escape
with. Another address than loopback needs an API key: `Authorization: Bearer KEY`, or `?key=KEY` once in the
browser, which sets an HttpOnly cookie for the page's own requests.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Optional

from tunelab.runs import index
from tunelab.runs.query import compare, headline, select

STATIC = Path(__file__).parent / "static"
COOKIE = "tunelab_key"


def run_id(path: str) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


def summary(row: dict) -> dict:
    test = (row.get("metrics") or {}).get("test") or {}
    return {"id": run_id(row["path"]), "parent_id": run_id(row["parent"]) if row["parent"] else None,
            **{k: row[k] for k in ("name", "path", "task", "kind", "status", "created", "updated", "model", "method",
                                   "step", "loss", "best_metric", "best_value")},
            "test": {k: v for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "headline": headline(row),
            "trial": (row.get("info") or {}).get("trial"),
            "peak_rss_mb": (row.get("info") or {}).get("peak_rss_mb")}  # fmt: skip


def history(path: Path, after: int = 0) -> dict:
    """metrics.jsonl's records from number `after` on; a half-written last line waits for the next poll."""
    import json

    file = Path(path) / "metrics.jsonl"
    records = []
    if file.exists():
        for line in file.read_text(encoding="utf-8").splitlines()[after:]:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return {"records": records, "next": after + len(records)}


def make_app(root: Path, api_key: Optional[str] = None):
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
    from fastapi.staticfiles import StaticFiles

    api = FastAPI(title="tunelab ui", docs_url=None, redoc_url=None, openapi_url=None)
    key = api_key.encode() if api_key else None

    @api.middleware("http")
    async def gate(request: Request, call_next):
        if key is None:
            return await call_next(request)
        given = request.query_params.get("key")
        if given is not None and hmac.compare_digest(given.encode(), key):  # the browser's first visit
            response = RedirectResponse(request.url.remove_query_params("key"), status_code=303)
            response.set_cookie(COOKIE, api_key, httponly=True, samesite="strict")
            return response
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        cookie = request.cookies.get(COOKIE, "")
        if (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key)) or (
            cookie and hmac.compare_digest(cookie.encode(), key)
        ):
            return await call_next(request)
        return JSONResponse({"error": "An API key is needed: open the page once with ?key=KEY, or send "
                                      "'Authorization: Bearer KEY'."}, status_code=401)  # fmt: skip

    def rows() -> list[dict]:
        return index.rows(root)

    known: dict[str, str] = {}  # run id -> path; a page polls one run every 2 s, so that read is one row

    def one(rid: str) -> dict:
        if rid not in known:
            known.update((run_id(p), p) for p in index.paths(root))
        row = index.row(Path(known[rid]), root) if rid in known else None
        if row is None:
            raise HTTPException(404, f"no run {rid} in the index of {root}")
        return row

    @api.get("/api/runs")
    def list_runs(task: Optional[str] = None, status: Optional[str] = None, kind: Optional[str] = None,
                  since: Optional[str] = None, where: list[str] = Query([]), all: bool = False):  # fmt: skip
        from tunelab.errors import TunelabError

        try:
            found = select(rows(), task, status, kind, since, where, all)
        except TunelabError as e:
            raise HTTPException(400, str(e)) from None
        return {"root": str(root), "runs": [summary(r) for r in found]}

    @api.get("/api/runs/{rid}")
    def show(rid: str):
        row = one(rid)
        path = Path(row["path"])
        recipe = path / "config.yaml"
        skip = ("checkpoints", "folds", "trials")  # their own pages, or not for people
        inside = [p.relative_to(path) for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
        files = sorted(p.as_posix() for p in inside if p.parts[0] not in skip)
        children = [summary(r) for r in index.children(path, root)]
        return {**summary(row), "info": row["info"], "metrics": row["metrics"], "files": files, "children": children,
                "recipe": recipe.read_text(encoding="utf-8") if recipe.exists() else None}  # fmt: skip

    @api.get("/api/runs/{rid}/history")
    def run_history(rid: str, after: int = 0):
        row = one(rid)
        return {"status": row["status"], **history(Path(row["path"]), max(0, after))}

    @api.get("/api/runs/{rid}/files/{name:path}")
    def run_file(rid: str, name: str):
        base = Path(one(rid)["path"]).resolve()
        target = (base / name).resolve()
        if not target.is_relative_to(base) or not target.is_file():  # confined to the run directory
            raise HTTPException(404, f"no file {name!r} in this run")
        return FileResponse(target)

    @api.get("/api/compare")
    def compare_runs(ids: str):
        chosen = [one(i) for i in ids.split(",") if i]
        if len(chosen) < 2:
            raise HTTPException(400, "compare needs two or more run ids: ?ids=a,b")
        c = compare(chosen)
        return {**c, "ids": [run_id(r["path"]) for r in chosen],
                "histories": [history(Path(r["path"]))["records"] for r in chosen]}  # fmt: skip

    @api.get("/")
    def page():
        return FileResponse(STATIC / "index.html")

    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    return api
