"""A thin layer over starlette for the JSON API.

Each endpoint declares its body, query and response models once; the same
declaration validates requests, renders responses and writes the OpenAPI
document, so the published limits are the enforced ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cases.actors import Actor
from cases.errors import CaseError, Forbidden, invalid_from
from cases.models import User


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **detail):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


def error_response(status: int, code: str, message: str, **detail) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **detail}, status_code=status)


class ErrorOut(BaseModel):
    error: str
    message: str
    errors: list[dict[str, str]] | None = None
    current_state: str | None = None


@dataclass
class Call:
    """What an endpoint receives: the request, who is calling, and validated inputs."""

    request: Request
    user: User | None
    actor: Actor | None
    body: Any = None
    query: Any = None

    @property
    def path(self) -> dict[str, Any]:
        return self.request.path_params

    @property
    def state(self):
        return self.request.app.state


Handler = Callable[[Call], Awaitable[Any]]


@dataclass
class Endpoint:
    method: str
    path: str
    summary: str
    handler: Handler
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    roles: frozenset[str] | None = None  # None: any logged-in user
    public: bool = False
    tag: str = "cases"
    path_params: dict[str, dict] = field(default_factory=dict)
    max_body: int | None = None
    raw_body: dict | None = None  # a non-JSON request body, described for the document
    response_list: bool = False
    operation_id: str | None = None


class Api:
    def __init__(self, authenticate: Callable[[Request, bool], Awaitable[tuple[User | None, Actor | None]]]):
        self.endpoints: list[Endpoint] = []
        self.authenticate = authenticate

    def add(self, method: str, path: str, summary: str, **kw) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, path, summary, handler, **kw))
            return handler

        return register

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for ep in self.endpoints:
            by_path.setdefault(ep.path, {})[ep.method] = ep
        routes = []
        for path, methods in by_path.items():
            limit = max((ep.max_body or 0) for ep in methods.values()) or None
            routes.append(
                Route(path, self._dispatcher(methods), methods=list(methods), max_body_size=limit)
            )
        return routes

    def _dispatcher(self, methods: dict[str, Endpoint]):
        async def endpoint(request: Request) -> Response:
            ep = methods[request.method if request.method != "HEAD" else "GET"]
            try:
                return await self._run(ep, request)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message, **exc.detail)
            except CaseError as exc:
                return error_response(exc.status_code, exc.code, exc.message, **exc.detail)

        return endpoint

    async def _run(self, ep: Endpoint, request: Request) -> Response:
        user, actor = (None, None)
        if not ep.public:
            unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
            user, actor = await self.authenticate(request, unsafe)
            if ep.roles is not None and user.role not in ep.roles:
                raise Forbidden("当前角色无权执行此操作")
        call = Call(request, user, actor)
        if ep.query is not None:
            try:
                call.query = ep.query.model_validate(dict(request.query_params))
            except ValidationError as exc:
                raise invalid_from(exc) from None
        if ep.body is not None:
            raw = await request.body()
            if not raw.strip():
                raw = b"{}"
            try:
                call.body = ep.body.model_validate_json(raw, strict=True)
            except ValidationError as exc:
                if any(e["type"] == "json_invalid" for e in exc.errors()):
                    raise ApiError(400, "bad_json", "请求体不是合法的 JSON") from None
                raise invalid_from(exc) from None
        result = await ep.handler(call)
        if isinstance(result, Response):
            return result
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        elif isinstance(result, list):
            result = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result]
        return JSONResponse(result, status_code=ep.status)

    # ---- OpenAPI ------------------------------------------------------------

    def openapi(self, title: str, version: str) -> dict:
        schemas: dict[str, Any] = {"ErrorOut": _schema(ErrorOut, schemas_holder := {})}
        paths: dict[str, dict] = {}
        for ep in self.endpoints:
            op: dict[str, Any] = {
                "summary": ep.summary,
                "operationId": _operation_id(ep),
                "tags": [ep.tag],
                "responses": {
                    str(ep.status): _response(ep, schemas_holder),
                    "400": _error_ref(),
                    "422": _error_ref(),
                },
            }
            if not ep.public:
                op["security"] = [{"bearer": []}, {"session": []}]
                op["responses"].update({"401": _error_ref(), "403": _error_ref()})
            params = [
                {"name": n, "in": "path", "required": True, "schema": s}
                for n, s in ep.path_params.items()
            ]
            for name in re.findall(r"{(\w+)", ep.path):
                if name not in ep.path_params:
                    params.append(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    )
            if ep.path_params or "{" in ep.path:
                op["responses"]["404"] = _error_ref()
            if ep.query is not None:
                qs = _schema(ep.query, schemas_holder)
                required = set(qs.get("required", []))
                for name, prop in qs.get("properties", {}).items():
                    params.append(
                        {"name": name, "in": "query", "required": name in required, "schema": prop}
                    )
            if params:
                op["parameters"] = params
            if ep.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref(ep.body, schemas_holder)}
                    },
                }
                op["responses"]["409"] = _error_ref()
                op["responses"]["413"] = _error_ref()
            elif ep.raw_body is not None:
                op["requestBody"] = ep.raw_body
                op["responses"]["413"] = _error_ref()
            paths.setdefault(_openapi_path(ep.path), {})[ep.method.lower()] = op
        schemas.update(schemas_holder)
        return {
            "openapi": "3.0.3",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "session"},
                },
            },
        }


def _operation_id(ep: Endpoint) -> str:
    return ep.operation_id or ep.handler.__name__.strip("_")


def _openapi_path(path: str) -> str:
    return re.sub(r"{(\w+)(:\w+)?}", r"{\1}", path)


def _schema(model: type[BaseModel], holder: dict) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        holder[name] = _to_openapi30(sub)
    return _to_openapi30(schema)


def _ref(model: type[BaseModel], holder: dict) -> dict:
    holder[model.__name__] = _schema(model, holder)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _response(ep: Endpoint, holder: dict) -> dict:
    out: dict[str, Any] = {"description": "OK"}
    if ep.response is not None:
        schema = _ref(ep.response, holder)
        if ep.response_list:
            schema = {"type": "array", "items": schema}
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _error_ref() -> dict:
    return {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


def _to_openapi30(schema: Any) -> Any:
    """Pydantic writes JSON Schema 2020-12; OpenAPI 3.0 wants nullable and no const."""
    if isinstance(schema, list):
        return [_to_openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: _to_openapi30(v) for k, v in schema.items() if k != "title"}
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    any_of = schema.get("anyOf")
    if any_of and any(s == {"type": "null"} for s in any_of):
        rest = [s for s in any_of if s != {"type": "null"}]
        schema.pop("anyOf")
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
        schema["nullable"] = True
    if "$ref" in schema and len(schema) > 1:
        ref = schema.pop("$ref")
        schema["allOf"] = [{"$ref": ref}]
    return schema


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
