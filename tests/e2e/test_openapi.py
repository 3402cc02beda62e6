"""The OpenAPI document covers every route the app serves, and /docs renders it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import regex
from starlette.routing import Route

from tests.conftest import LiveServer


async def test_every_route_is_documented(live_api: LiveServer, client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    served = {
        (method.lower(), route.path)
        for route in live_api.app.routes
        # The WebSocket path's plain-HTTP refusal (426) is the socket's, not an operation.
        if isinstance(route, Route) and route.include_in_schema
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert served == documented
    signup = doc["paths"]["/v1/users"]["post"]
    schema_ref = signup["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    signup_schema = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(signup_schema["required"]) == {"email", "password", "confirm_password"}
    assert {"409", "422", "503"} <= set(signup["responses"])


async def test_docs_page_is_self_contained(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.split("<body>")[1]
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "docs.js", "docs.css"):
        asset = await client.get(f"/docs/static/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(("text/javascript", "text/css"))
    script = await client.get("/docs/static/docs.js")
    assert "url: '/openapi.json'" in script.text
    missing = await client.get("/docs/static/LICENSE")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_library_files_are_sent_again_only_when_changed(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/docs/static/swagger-ui-bundle.js")
    assert first.headers["content-encoding"] == "gzip"
    assert "SwaggerUIBundle" in first.text
    again = await client.get(
        "/docs/static/swagger-ui-bundle.js", headers={"if-none-match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""


async def test_path_and_query_parameters_are_documented(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    publish = doc["paths"]["/v1/articles/{article_id}/publish"]["post"]
    assert {
        "name": "article_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    } in publish["parameters"]
    listing = doc["paths"]["/v1/articles"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "cursor", "author", "tag"}
    # What a page holds when the client names no size; a parameter with no default says
    # none (not "null", which a query string cannot carry).
    given = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert given["limit"]["default"] == 20
    assert "default" not in given["cursor"]
    # Every list's cursor is stated alike, as every list reads one alike.
    cursors = [
        p["schema"]
        for operations in doc["paths"].values()
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p["name"] == "cursor"
    ]
    assert len(cursors) >= 8
    assert all(c == given["cursor"] for c in cursors), cursors
    # WeChat's callback cannot work without both.
    callback = doc["paths"]["/v1/auth/wechat/callback"]["get"]["parameters"]
    assert {p["name"]: p["required"] for p in callback} == {"code": True, "state": True}
    # A refresh may send its token in a header instead of a body (test_sessions.py).
    refresh = doc["paths"]["/v1/auth/refresh"]["post"]
    assert refresh["requestBody"]["required"] is False
    assert [(p["name"], p["in"]) for p in refresh["parameters"]] == [("x-refresh-token", "header")]


def _schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    found: dict[str, Any] = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return found


async def test_the_document_states_the_constraints_the_api_enforces(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    password = _schema(doc, "/v1/users", "post")["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 128)
    # Counted as hashed, which JSON Schema cannot say: a half-width kana and its voiced
    # mark are two characters as sent, one as hashed.
    assert "NFKC" in password["description"]
    assert "128 hold as sent too" in password["description"]  # maxLength counts as sent
    length, *classes = (rule["pattern"] for rule in password["allOf"])
    assert classes == [r"\p{L}", r"\p{Nd}", r"[\p{P}\p{S}]"]
    # Eight characters one sees: what shows nothing does not count toward them.
    assert regex.search(length, "\u200b" * 5 + "abcdefg1!")
    assert not regex.search(length, "\u200b" * 5 + "a1!")
    assert "do not count toward the 8" in password["description"]
    assert _schema(doc, "/v1/users", "post")["properties"]["email"]["format"] == "email"
    title = _schema(doc, "/v1/articles", "post")["properties"]["title"]
    assert (title["minLength"], title["maxLength"]) == (1, 128)
    assert "pattern" in title
    phone = _schema(doc, "/v1/auth/sms/login", "post")["properties"]["phone"]
    assert re.search(phone["pattern"], "+8613800138000")
    assert not re.search(phone["pattern"], "000")
    limit = next(
        p for p in doc["paths"]["/v1/articles"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}


async def test_every_text_input_is_documented_without_control_characters(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    bodies = {
        (method, path): _schema(doc, path, method)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    }
    assert bodies
    for where, schema in bodies.items():
        for field, prop in schema["properties"].items():
            for option in prop.get("anyOf", [prop]):
                option = option.get("items", option)
                if option.get("type") == "string" and "format" not in option:
                    assert "pattern" in option or "enum" in option, (where, field)
                    assert not re.search(option.get("pattern", "^$"), "a\u0000b"), (where, field)


async def test_statuses_an_endpoint_gives_by_what_it_is_are_documented(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            documented = set(op["responses"])
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= documented, (method, path)
            if "security" in op:
                assert "401" in documented, (method, path)
            if path.startswith("/v1/"):
                # 400: a Bloghub-After the service did not issue, on any of them.
                assert {"400", "429", "503"} <= documented, (method, path)
                assert "Retry-After" in op["responses"]["503"]["headers"], (method, path)
            if path == "/metrics" or (path.startswith("/ops") and "/static/" not in path):
                # Wrong operator tokens lock the address, even to the right one.
                assert "429" in documented, (method, path)
            cursors = {"cursor", "before", "after"}
            if method == "get" and cursors & {p["name"] for p in op.get("parameters", [])}:
                # A cursor of the right form that names no page is a 404 in every list.
                assert "404" in documented, (method, path)
    assert "400" in doc["paths"]["/ops/session"]["post"]["responses"]
    # A code the provider could not take at once is queued: 202, as the README says.
    assert {"200", "202"} <= set(doc["paths"]["/v1/auth/sms/code"]["post"]["responses"])


async def test_phones_are_documented_for_the_countries_codes_go_to(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    pattern = schemas["CodeRequest"]["properties"]["phone"]["pattern"]
    # The suite serves the default list, mainland China only: a number elsewhere is
    # refused, so the document does not call it valid.
    assert re.fullmatch(pattern, "+8613800138000")
    assert re.fullmatch(pattern, "13800138000")
    assert not re.fullmatch(pattern, "+14155550100")
    refused = await client.post("/v1/auth/sms/code", json={"phone": "+14155550100"})
    assert refused.status_code == 422


async def test_what_a_draft_write_answers_is_documented(client: httpx.AsyncClient) -> None:
    """A generated client reads a new draft's id and its version (the next edit sends it)
    from the answer the document describes, and learns of Idempotency-Key and of the
    position a write answers."""
    doc = (await client.get("/openapi.json")).json()
    create = doc["paths"]["/v1/articles"]["post"]
    ref = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    shape = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    draft_ref = doc["components"]["schemas"][
        shape["properties"]["article"]["$ref"].rsplit("/", 1)[1]
    ]
    assert set(draft_ref["required"]) == {"id", "version"}
    assert "Idempotency-Key" in create["description"]
    headers = {p["name"]: p for p in create["parameters"] if p["in"] == "header"}
    assert re.fullmatch(headers["Idempotency-Key"]["schema"]["pattern"], "retry-1:a.b_c")
    assert not re.fullmatch(headers["Idempotency-Key"]["schema"]["pattern"], "k" * 129)
    assert {"Bloghub-Position", "Idempotent-Replay"} <= set(create["responses"]["201"]["headers"])
    for path in ("/v1/articles/{article_id}/publish", "/v1/articles/{article_id}/withdraw"):
        assert "content" in doc["paths"][path]["post"]["responses"]["200"], path
    assert "content" in doc["paths"]["/v1/articles/{article_id}"]["put"]["responses"]["200"]
    birthday = doc["components"]["schemas"]["ProfilePatch"]["properties"]["birthday"]
    pattern = next(b["pattern"] for b in birthday["anyOf"] if "pattern" in b)
    assert re.match(pattern, f"{datetime.now(UTC).year}-01-01"), "this year's dates are valid"


async def test_the_consistency_headers_are_documented_where_they_are_sent(
    client: httpx.AsyncClient,
) -> None:
    """Bloghub-Stale is "true" (the document said "1") on any /v1 read; Bloghub-Position
    on a login as on every other /v1 write; a body-less command lists no 415."""
    doc = (await client.get("/openapi.json")).json()
    assert "`Bloghub-Stale: true`" in doc["info"]["description"]
    for path in ("/v1/articles", "/v1/articles/{article_id}", "/v1/feed", "/v1/users/{user_id}"):
        assert "Bloghub-Stale" in doc["paths"][path]["get"]["responses"]["200"]["headers"], path
    login = doc["paths"]["/v1/auth/login"]["post"]["responses"]["200"]
    assert "Bloghub-Position" in login["headers"]
    for path in ("/v1/articles/{article_id}/publish", "/v1/articles/{article_id}/withdraw"):
        assert "415" not in doc["paths"][path]["post"]["responses"], path
    nickname = doc["components"]["schemas"]["ProfilePatch"]["properties"]["nickname"]
    assert "not an account id" in nickname["anyOf"][0]["description"]
