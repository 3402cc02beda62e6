"""/api keeps RealWorld's own specification, as judged by Schemathesis (a tool no one
here wrote) over ``realworld-openapi.yml``: every operation, called as a real signed-in
user, with data the spec calls valid and data it calls invalid, answers with a status the
spec gives it, in its content type and response schema, and never a server error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import AuthContext, BaseSchema, Case
from schemathesis.core.result import Ok
from schemathesis.engine import from_schema
from schemathesis.engine.events import ScenarioFinished
from schemathesis.engine.run import PhaseName

from tests.conftest import LiveServer
from tests.e2e.conduit_client import PASSWORD, register
from tests.e2e.test_contract import USER_AGENT, Verdict, describe

# RealWorld's specification v2.0.0 as published (MIT), kept beside the test unchanged.
SPEC = Path(__file__).with_name("realworld-openapi.yml")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]


def config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": {"User-Agent": USER_AGENT},
            "output": {"sanitization": {"enabled": False}},
            "seed": 1,
            "generation": {"mode": "all", "max-examples": 5},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def signed_in(schema: BaseSchema, url: str, email: str) -> None:
    """Every call carries the user's token as RealWorld sends it (``Token <jwt>``)."""

    @schema.auth(retry_on=[401])
    class RealUser:
        token: str | None = None

        def get(self, case: Case[Any], context: AuthContext) -> str:
            with httpx.Client(base_url=url, headers={"user-agent": USER_AGENT}) as http:
                if self.token is not None:
                    me = http.get("/api/user", headers={"authorization": f"Token {self.token}"})
                    if me.status_code == 200:
                        return self.token
                login = http.post(
                    "/api/users/login", json={"user": {"email": email, "password": PASSWORD}}
                )
                login.raise_for_status()
                self.token = str(login.json()["user"]["token"])
                return self.token

        def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
            case.headers["Authorization"] = f"Token {data}"


def run(url: str, email: str) -> Verdict:
    schema = schemathesis.openapi.from_path(str(SPEC), config=config())
    schema.config.update(base_url=f"{url}/api")
    signed_in(schema, url, email)
    documented = {
        result.ok().label if isinstance(result, Ok) else repr(result.err())
        for result in schema.get_all_operations()
    }
    verdict = Verdict(documented, set(), [])
    for event in from_schema(schema).execute():
        verdict.problems.extend(describe(event))
        if (
            isinstance(event, ScenarioFinished)
            and event.phase is PhaseName.FUZZING
            and event.recorder.interactions
        ):
            verdict.fuzzed.add(event.recorder.label)
    return verdict


@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:"
    "hypothesis.errors.HypothesisDeprecationWarning",
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning",
)
async def test_api_keeps_the_realworld_specification(
    live_api: LiveServer, client: httpx.AsyncClient
) -> None:
    user = await register(client)
    verdict = await asyncio.to_thread(run, live_api.url, user.email)
    assert not verdict.problems, "\n\n".join(dict.fromkeys(verdict.problems))
    assert len(verdict.documented) == 19
    assert verdict.fuzzed == verdict.documented
