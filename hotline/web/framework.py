"""A thin layer over starlette for the JSON API.

Each endpoint declares its body, query and response models once; the same
declaration validates requests, renders responses and writes the OpenAPI
document, so the published limits are the enforced ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cases.actors import Actor
from cases.errors import CaseError, Forbidden, InvalidInput, NotFound
from cases.models import User

SESSION_COOKIE = "hotline_session"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **detail):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


def error_response(status: int, code: str, message: str, **detail) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **detail}, status_code=status)


# Pydantic tags the location of an error inside a union with the member's type;
# clients want the field, not "caller_phone.constrained-str".
_FIELD_PART = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none", "date", "datetime", "list", "dict"})


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if isinstance(p, int) or (_FIELD_PART.match(p) and p not in _TYPE_TAGS)]
    return ".".join(parts) or "body"


def invalid(exc: ValidationError) -> InvalidInput:
    """A pydantic failure as a 422 that names each field once."""
    errors: dict[str, str] = {}
    for e in exc.errors(include_url=False, include_input=False):
        errors.setdefault(_field_name(e["loc"]), e["msg"])
    return InvalidInput("请求参数有误", errors=[{"field": f, "message": m} for f, m in errors.items()])


class ErrorOut(BaseModel):
    error: str
    message: str
    errors: list[dict[str, str]] | None = None
    field: str | None = None
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
    # Further documented outcomes: status -> a response model, or None for the error shape.
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)


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
        return [Route(path, self._dispatcher(methods), methods=list(methods)) for path, methods in by_path.items()]

    def body_limits(self) -> list[tuple[re.Pattern[str], int]]:
        """The paths allowed a larger body than the application's default (uploads)."""
        limits: dict[str, int] = {}
        for ep in self.endpoints:
            if ep.max_body:
                limits[ep.path] = max(limits.get(ep.path, 0), ep.max_body)
        return [(compile_path(path)[0], limit) for path, limit in limits.items()]

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
        for name, schema in ep.path_params.items():
            if not path_value_fits(schema, request.path_params.get(name, "")):
                # No resource can live at an address that breaks its own pattern.
                raise NotFound("地址不存在")
        call = Call(request, user, actor)
        if ep.query is not None:
            repeated = sorted({k for k, _ in request.query_params.multi_items() if len(request.query_params.getlist(k)) > 1})
            if repeated:
                raise InvalidInput("请求参数有误", errors=[{"field": k, "message": "参数重复"} for k in repeated])
            try:
                call.query = ep.query.model_validate(dict(request.query_params))
            except ValidationError as exc:
                raise invalid(exc) from None
            _refuse_nul(call.query.model_dump())
        if ep.body is not None:
            raw = await request.body()
            if not raw.strip():
                raw = b"{}"
            elif not _is_json(request.headers.get("content-type", "")):
                # Only JSON, so a cross-site form (text/plain) can never post a
                # well-formed body, e.g. to log a victim into the attacker's account.
                raise ApiError(415, "unsupported_media_type", "请求体须为 JSON（Content-Type: application/json）")
            try:
                call.body = ep.body.model_validate_json(raw, strict=True)
            except ValidationError as exc:
                if any(e["type"] == "json_invalid" for e in exc.errors()):
                    raise ApiError(400, "bad_json", "请求体不是合法的 JSON") from None
                raise invalid(exc) from None
            _refuse_nul(call.body.model_dump())
            _check_text_as_sent(ep.body, raw)
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
            for status, model in ep.responses.items():
                if model is None:
                    op["responses"][str(status)] = _error_ref()
                else:
                    op["responses"][str(status)] = {
                        "description": "OK",
                        "content": {"application/json": {"schema": _ref(model, schemas_holder)}},
                    }
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
                    # An empty body stands for {}, so it is optional when every field is.
                    "required": any(f.is_required() for f in ep.body.model_fields.values()),
                    "content": {
                        "application/json": {"schema": _ref(ep.body, schemas_holder)}
                    },
                }
                op["responses"]["409"] = _error_ref()
                op["responses"]["413"] = _error_ref()
                op["responses"]["415"] = _error_ref()
            elif ep.raw_body is not None:
                op["requestBody"] = ep.raw_body
                op["responses"]["413"] = _error_ref()
                op["responses"]["415"] = _error_ref()
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
                    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                },
            },
        }


_TEXT_RULES: dict[type[BaseModel], dict[str, Any]] = {}


def _check_text_as_sent(model: type[BaseModel], raw: bytes) -> None:
    """Hold top-level text fields to the published limits as sent, not as trimmed.

    A model may trim whitespace before checking lengths and patterns, which
    lets "\f" + 4000 characters through a published maxLength of 4000.
    """
    rules = _TEXT_RULES.get(model)
    if rules is None:
        rules = _TEXT_RULES[model] = model.model_json_schema().get("properties", {})
    sent = json.loads(raw)
    if not isinstance(sent, dict):
        return
    errors = [
        {"field": name, "message": "超出允许的长度或格式"}
        for name, value in sent.items()
        if isinstance(value, str) and _text_fits(rules.get(name, {}), value) is False
    ]
    if errors:
        raise InvalidInput("请求参数有误", errors=errors)


def _text_fits(schema: dict, value: str) -> bool | None:
    """Whether a JSON Schema accepts this text; None when it says nothing about text."""
    if "anyOf" in schema:
        verdicts = [v for v in (_text_fits(s, value) for s in schema["anyOf"]) if v is not None]
        return any(verdicts) if verdicts else None
    if "const" in schema:
        return value == schema["const"]
    if "enum" in schema:
        return value in schema["enum"]
    if schema.get("type") != "string":
        return None
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return False
    pattern = schema.get("pattern")
    if pattern is not None:
        # JSON Schema's "$" is the end of the text, Python's also matches before a final newline.
        if pattern.endswith("$") and not pattern.endswith("\\$"):
            pattern = pattern[:-1] + r"\Z"
        if not re.search(pattern, value):
            return False
    return True


def _refuse_nul(data: Any, path: str = "") -> None:
    """PostgreSQL text cannot hold U+0000: refuse it as input instead of failing on the insert."""
    if isinstance(data, str):
        if "\x00" in data:
            raise InvalidInput("请求参数有误", errors=[{"field": path or "body", "message": "不能包含空字符 (U+0000)"}])
    elif isinstance(data, dict):
        for key, value in data.items():
            _refuse_nul(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            _refuse_nul(value, f"{path}.{i}" if path else str(i))


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def path_value_fits(schema: dict, value: str) -> bool:
    """Whether a path segment matches the schema the document publishes for it."""
    if schema.get("type") == "integer":
        # ASCII digits only: int() would also take "٣", " 3" and "1_0".
        if not re.fullmatch(r"-?[0-9]{1,18}", value):
            return False
        number = int(value)
        return schema.get("minimum", number) <= number <= schema.get("maximum", number)
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        return False
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return False
    return "\x00" not in value


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


class BodyLimit:
    """Refuse request bodies over a size limit with a 413 in the API's own error format.

    Starlette's built-in limit answers in plain text whenever Content-Length is
    too large, which breaks the promise that every /api/ error is JSON.
    """

    def __init__(self, app: ASGIApp, default: int, limits: list[tuple[re.Pattern[str], int]] = ()):
        self.app, self.default, self.limits = app, default, list(limits)

    def limit_for(self, path: str) -> int:
        for pattern, limit in self.limits:
            if pattern.match(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > limit:
            await too_large(scope["path"])(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413)
            return message

        await self.app(scope, limited, send)


def too_large(path: str) -> Response:
    if path.startswith("/api/"):
        return error_response(413, "http_413", "请求体过大")
    # A page a citizen can act on: the browser shows it in place of the form.
    return HTMLResponse(
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>提交内容过长</title></head>'
        '<body style="font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em">'
        "<h1>提交内容过长</h1><p>您提交的内容超过了系统允许的长度，未被保存。"
        "请精简文字（诉求内容不超过4000字）后返回上一页重新提交。</p>"
        '<p><a href="javascript:history.back()">返回上一页</a></p></body></html>',
        status_code=413,
    )


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
