"""The OpenAPI document covers every route the app serves, and /docs renders it."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from tests.conftest import LiveServer


async def test_every_route_is_documented(live_api: LiveServer, client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    served = {
        (method.lower(), route.path)
        for route in live_api.app.routes
        if isinstance(route, Route)
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
    assert "/docs/docs.js" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")
    script = await client.get("/docs/docs.js")
    assert script.status_code == 200
    assert "fetch('/openapi.json')" in script.text


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
