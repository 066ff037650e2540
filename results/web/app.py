"""`bench serve`: a read-only FastAPI application over a results store.

Every page has a JSON twin under /api with the same data (results.web.views); the pages are
the templates of results.web.pages over it. The OpenAPI page is /api/docs, served with the
Swagger UI that the swagger-ui-bundle package ships (offline), plotly.js from the plotly
package: nothing is fetched from the network at run time. Requests are served by plain (sync)
endpoints, which FastAPI runs in its thread pool: SQLAlchemy's engine is shared between them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import orjson
except ImportError:  # the web extra installs it; json does the same, slower
    orjson = None

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from harness.errors import UserError
from results.runfile import jsonable
from results.web import api_models, pages, views

if TYPE_CHECKING:
    from results.store import Store

DOCS_ASSETS = "/api/docs-assets"
CACHE = {"Cache-Control": "public, max-age=3600"}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class _Json(JSONResponse):
    """Strict JSON; the walk that writes inf and nan as strings (jsonable) only when a value
    needs it: on a 10,000-point history the walk costs more than the encoding."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))
        except ValueError:
            text = json.dumps(jsonable(content), ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))
        return text.encode("utf-8")


class _StrictJson(JSONResponse):
    """Content that is strict JSON already (no inf or nan: views.case_view makes it so),
    written by orjson where it is installed: an order of magnitude faster than json on a
    10,000-point history."""

    def render(self, content: Any) -> bytes:
        if orjson is not None:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        return json.dumps(content, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")


def _api(data: Any) -> JSONResponse:
    return _Json(data)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(store: Store, run_dir: Path | None = None) -> FastAPI:
    """The application over an open store (read only: it calls no method that writes).
    `run_dir` is where traces of runs whose folder moved are looked for (<run id>/traces)."""
    app = FastAPI(title="accelbench results", version="1",
                  description="Read-only JSON API of an accelbench results store: runs, "
                  "one run, a case's history, a comparison of two runs.",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    links = pages.Links()
    name = store.name  # the URL with its password hidden

    def page(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(pages.render(template, links, store=name, **context))

    def error(request: Request, status: int, title: str, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        return HTMLResponse(pages.render("error.html", links, store=name, status=status,
                                         title=title, message=message), status_code=status)

    @app.exception_handler(views.NotFound)
    def not_found(request: Request, exc: views.NotFound) -> Response:
        return error(request, 404, "not found", str(exc))

    @app.exception_handler(UserError)
    def bad_request(request: Request, exc: UserError) -> Response:
        return error(request, 400, "bad request", str(exc))

    @app.exception_handler(RequestValidationError)
    def bad_params(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                             for e in exc.errors())
        return error(request, 400, "bad request", problems or "invalid parameters")

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error(request, 404, "not found", f"no page {request.url.path}")
        return error(request, exc.status_code, "error", str(exc.detail))

    @app.exception_handler(Exception)
    def server_error(request: Request, exc: Exception) -> Response:
        # One line for the page; the traceback goes to the server's log, not to the reader.
        return error(request, 500, "server error", f"{type(exc).__name__} while serving "
                     f"{request.url.path}; see the server's log")

    # -- pages ------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/runs")

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(tag: str = "", host: str = "", backend: str = "", status: str = "",
                  since: str = "", until: str = "", page_no: int = Query(1, alias="page"),
                  per_page: int = views.PAGE_SIZE) -> HTMLResponse:
        query = views.Query(tag, host, backend, status, since, until)
        data = views.runs_view(store, query, page_no, per_page)
        pairs = views.ab_pairs(store) if page_no == 1 and not query.params() else []
        return page("runs.html", **data, statuses=views.STATUSES, ab_pairs=pairs)

    @app.get("/runs/{run_ref}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(run_ref: str) -> HTMLResponse:
        return page("run.html", **views.run_view(store, run_ref, run_dir))

    @app.get("/runs/{run_ref}/traces/{name}", include_in_schema=False)
    def trace(run_ref: str, name: str) -> FileResponse:
        path = views.trace_file(store, run_ref, name, run_dir)
        return FileResponse(path, media_type="application/gzip" if name.endswith(".gz")
                            else "application/json", filename=name)

    @app.get("/cases/{case_key:path}", response_class=HTMLResponse, include_in_schema=False)
    def case_page(case_key: str, tag: str = "", last: int | None = None) -> HTMLResponse:
        data = views.case_view(store, case_key, views.Query(tag=tag), last)
        return HTMLResponse(pages.case_page(links, data, name,
                                            pages.api_case_path(case_key)))

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(base: str = "", head: str = "", threshold: float = 0.05,
                     fdr: float = 0.05) -> HTMLResponse:
        if not base or not head:
            return page("compare.html", base_ref=base, head_ref=head)
        data = views.compare_view(store, base, head, threshold, fdr)
        return page("compare.html", **data, base_ref=base, head_ref=head,
                    api_path=pages.api_compare_path(base, head))

    @app.get("/scaling", response_class=HTMLResponse, include_in_schema=False)
    def scaling_page(runs: str) -> HTMLResponse:
        return page("scaling.html", **views.scaling_view(store, _refs(runs)))

    @app.get("/static/{asset}", include_in_schema=False)
    def static(asset: str) -> Response:
        try:
            text = pages.asset(asset)
        except KeyError:
            raise StarletteHTTPException(404) from None
        suffix = asset[asset.rfind("."):]
        return Response(text, media_type=TYPES.get(suffix, "text/plain"), headers=CACHE)

    # -- JSON API ---------------------------------------------------------------------------

    @app.get("/api/runs", summary="Runs, newest first, filtered and paged")
    def api_runs(tag: str = Query("", description="KEY=VALUE[,KEY=VALUE...]"),
                 host: str = "", backend: str = Query("", description="e.g. torch:cpu or torch"),
                 status: str = Query("", description="complete, partial or failed"),
                 since: str = Query("", description="ISO date or time (UTC)"),
                 until: str = Query("", description="ISO date (that whole day) or time"),
                 page: int = 1, per_page: int = views.PAGE_SIZE) -> JSONResponse:
        query = views.Query(tag, host, backend, status, since, until)
        return _api(views.runs_view(store, query, page, per_page))

    @app.get("/api/runs/{run_ref}", summary="One run: header, environment, measurements")
    def api_run(run_ref: str) -> JSONResponse:
        return _api(views.run_view(store, run_ref, run_dir))

    @app.get("/api/cases/{case_key:path}/history",
             summary="A case's history across runs: every point, change points, steps",
             description="Every point, oldest first, as columns under `points` (one entry "
             "per run in each); `steps[].index` and `change_points` index into them.",
             responses={200: {"model": api_models.CaseHistory}})
    def api_history(case_key: str, tag: str = "", last: int | None = None,
                    threshold: float = 0.05) -> JSONResponse:
        return _StrictJson(views.case_view(store, case_key, views.Query(tag=tag), last,
                                           threshold, plot_points=None))

    @app.get("/api/compare", summary="bench compare BASE HEAD: the verdict per case")
    def api_compare(base: str, head: str, threshold: float = 0.05,
                    fdr: float = 0.05) -> JSONResponse:
        return _api(views.compare_view(store, base, head, threshold, fdr))

    @app.get("/api/scaling", summary="Scaling efficiency across runs at different world sizes")
    def api_scaling(runs: str = Query(..., description="run references, comma-separated")
                    ) -> JSONResponse:
        return _api(views.scaling_view(store, _refs(runs)))

    _docs(app)
    return app


def _refs(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def _docs(app: FastAPI) -> None:
    """/api/docs: Swagger UI from the swagger-ui-bundle package when it is installed (else the
    OpenAPI JSON alone is there, at /api/openapi.json)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return
    from starlette.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json",
                                   title="accelbench results API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")
