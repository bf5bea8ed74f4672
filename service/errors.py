"""One base class for every error a user can act on, and the one handler that renders them.

Services raise subclasses of :class:`ServiceError`; routers never raise ``HTTPException``. Each
route lists what it may raise with :func:`responses` so the errors appear in the OpenAPI schema.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """One thing wrong with the input; ``row`` is 1-based (None for file-level problems)."""

    file: str | None = None
    row: int | None = None
    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: str  # a stable code, e.g. "task_not_found"
    message: str  # what went wrong and what to do about it
    problems: list[Problem] | None = None


class ServiceError(Exception):
    """A domain error with its HTTP status, a stable code and a message a user can act on."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    description: ClassVar[str] = "Bad request"

    def __init__(
        self,
        message: str,
        *,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems
        self.headers = headers

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.code, message=self.message, problems=self.problems)


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"
    description = "Not found (or not visible to this key)"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"
    description = "Conflicts with the current state"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"
    description = "Not allowed for this key"


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_input"
    description = "The input is invalid; `problems` lists what to fix"


def responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may raise ``errors`` (grouped by status code)."""
    out: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = out.setdefault(error.status_code, {"model": ErrorBody, "description": ""})
        parts = [p for p in entry["description"].split("; ") if p]
        if error.description not in parts:
            entry["description"] = "; ".join([*parts, error.description])
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Render :class:`ServiceError` and request validation errors as :class:`ErrorBody`."""

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(
            exc.body().model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            Problem(field=".".join(str(p) for p in e.get("loc", ())), message=e.get("msg", ""))
            for e in exc.errors()
        ]
        body = ErrorBody(
            error="invalid_request", message="the request is invalid", problems=problems
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=422)

    @app.exception_handler(RecursionError)
    async def _too_deep(_request: Request, exc: RecursionError) -> JSONResponse:
        # A JSON body nested deeper than Python's stack ("[[[[..."), where the framework parses
        # it: the client's input, not the server's fault.
        return _invalid_request("the JSON body is nested too deeply")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own 404 (no such route) and 405 (wrong method) in the one error shape
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        body = ErrorBody(error=code, message=str(exc.detail))
        return JSONResponse(
            body.model_dump(mode="json"), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(SQLAlchemyTimeout)
    async def _no_connection(_request: Request, exc: SQLAlchemyTimeout) -> JSONResponse:
        # Every database connection stayed busy past TASKREC_DB_POOL_TIMEOUT_S: shed, fast
        return _unavailable("the server is busy (no database connection free); retry shortly")

    @app.exception_handler(DataError)
    async def _out_of_range(_request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold reached it (an integer past its range, a NUL in
        # text): the request's fault. Schemas bound what they can; this is the net below them.
        log.warning("database refused a value: %s", str(exc.orig).splitlines()[0][:200])
        return _invalid_request("a value in the request is out of range for the database")

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        if type(exc.orig).__name__ == "QueryCanceled":  # PostgreSQL's statement_timeout
            body = ErrorBody(
                error="deadline_exceeded",
                message="a database statement ran past the request deadline and was cancelled; "
                "what the request had not committed was rolled back",
            )
            return JSONResponse(body.model_dump(mode="json"), 503, headers={"Retry-After": "1"})
        log.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
        return _unavailable("the database is unavailable; retry shortly (/readyz says more)")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        body = ErrorBody(error="internal_error", message="internal error; see the server log")
        return JSONResponse(body.model_dump(mode="json"), status_code=500)


def _invalid_request(message: str) -> JSONResponse:
    body = ErrorBody(error="invalid_request", message=message, problems=[Problem(message=message)])
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


def _unavailable(message: str) -> JSONResponse:
    body = ErrorBody(error="unavailable", message=message)
    return JSONResponse(body.model_dump(mode="json"), status_code=503, headers={"Retry-After": "2"})
