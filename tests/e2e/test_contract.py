"""The API keeps the contract its own ``/openapi.json`` states, as judged by Schemathesis
(a tool no one here wrote): every operation, called as a real signed-in user, with data
the document calls valid and data it calls invalid."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import schemathesis
from schemathesis import AuthContext, BaseSchema, Case, HookContext
from schemathesis.core.result import Ok
from schemathesis.engine import from_schema
from schemathesis.engine.events import EngineEvent, FatalError, NonFatalError, ScenarioFinished
from schemathesis.engine.run import PhaseName
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from tests.conftest import LiveServer

PASSWORD = "contract-Pass-1!"
USER_AGENT = "bloghub-contract/1"  # tokens are bound to the User-Agent that logged in

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "unsupported_method",
    "allow_header_conformance",
]


def contract_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": {"User-Agent": USER_AGENT},
            "max-stream-events": 1,  # the dashboard's live stream never ends by itself
            "output": {"sanitization": {"enabled": False}},
            # Fixed, so a failure can be replayed; the coverage phase adds each operation's
            # boundary and wrong-method cases on top of these few examples.
            "seed": 1,
            "generation": {"mode": "all", "max-examples": 5},
            # The document declares no links between operations for a stateful run to follow.
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def describe(event: EngineEvent) -> list[str]:
    """What a failed scenario or an engine error says, with the call that shows it."""
    if isinstance(event, ScenarioFinished):
        out = []
        for case_id, checks in event.recorder.checks.items():
            for check in checks:
                if check.failure_info is None:
                    continue
                case = event.recorder.cases[case_id].value
                answer = event.recorder.interactions.get(case_id)
                response = answer.response if answer is not None else None
                said = ""
                if response is not None:
                    said = f"\n  -> {response.status_code} {response.content[:300]!r}"
                out.append(
                    f"{event.recorder.label} [{check.name}] {check.failure_info.failure.title}: "
                    f"{check.failure_info.failure.message}\n  {case.as_curl_command()}{said}"
                )
        return out
    if isinstance(event, NonFatalError):
        return [f"{event.label}: error {event.value!r}"]
    if isinstance(event, FatalError):
        return [f"engine failed: {event.exception!r}"]
    return []


OPERATOR_PATHS = r"^/(ops|metrics)"


def signed_in(schema: BaseSchema, url: str, email: str, operator_token: str) -> None:
    """Every call carries the real user's access token (the operator's on the operator's
    routes); logout is among the operations, so a 401 sends the provider to log in again
    if (and only if) the session has ended."""

    @schema.auth(refresh_interval=None).apply_to(path_regex=OPERATOR_PATHS)
    class Operator:
        def get(self, case: Case[Any], context: AuthContext) -> str:
            return operator_token

        def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    @schema.auth(retry_on=[401]).skip_for(path_regex=OPERATOR_PATHS)
    class RealUser:
        token: str | None = None

        def get(self, case: Case[Any], context: AuthContext) -> str:
            with httpx.Client(base_url=url, headers={"user-agent": USER_AGENT}) as http:
                if self.token is not None:
                    me = http.get("/v1/users/me", headers={"authorization": f"Bearer {self.token}"})
                    if me.status_code == 200:
                        return self.token
                credentials = {"email": email, "password": PASSWORD}
                login = http.post("/v1/auth/login", json=credentials)
                for _ in range(120):  # a new account not applied yet: retried, as told
                    if login.status_code != 503:
                        break
                    time.sleep(0.5)
                    login = http.post("/v1/auth/login", json=credentials)
                login.raise_for_status()
                self.token = str(login.json()["access_token"])
                return self.token

        def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"


def confirm_as_a_client_would(
    context: HookContext, case: Case[Any], kwargs: dict[str, Any]
) -> None:
    """JSON Schema cannot say "equal to another field": a confirmation repeats the password
    here as any client's does (the document says so in words). Nor "a new key for each new
    request": a client reuses an Idempotency-Key only to retry the same request (another
    request with it is 422, as documented), so a generated key is made the request's own."""
    body = case.body
    if isinstance(body, dict) and "confirm_password" in body:
        body["confirm_password"] = body.get("password", body.get("new_password"))
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str):
        request = repr((case.method, case.formatted_path, case.query, body)).encode()
        case.headers["Idempotency-Key"] = f"{key[:100]}.{hashlib.sha256(request).hexdigest()[:16]}"


@dataclass
class Verdict:
    documented: set[str]
    fuzzed: set[str]  # operations the fuzzing phase sent requests to
    problems: list[str]


# The engine spends its time making cases (Hypothesis strategies from the document's
# patterns), in Python: the operations are shared among processes, one per core.
SHARDS = max(2, os.cpu_count() or 1)


def run_shard(url: str, email: str, operator_token: str, shard: int) -> Verdict:
    """``run_schemathesis`` for every ``SHARDS``-th operation from ``shard`` on, in a
    process of its own, as a user of its own. Schemathesis drives Hypothesis in ways
    Hypothesis itself frowns on; those two notices are about the tool, not about this API."""
    for message in ("Do not use the `random` module", "Generating overly large repr"):
        warnings.filterwarnings("ignore", message=message)
    return run_schemathesis(url, email, operator_token, shard)


def run_schemathesis(url: str, email: str, operator_token: str, shard: int = 0) -> Verdict:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=contract_config())
    schema.config.update(base_url=url)
    # A part of the document schemathesis cannot read is an operation it never tests.
    documented = {
        result.ok().label if isinstance(result, Ok) else repr(result.err())
        for result in schema.get_all_operations()
    }
    mine = schema.include(name=sorted(documented)[shard::SHARDS])
    signed_in(mine, url, email, operator_token)
    verdict = Verdict(documented, set(), [])
    # Only the global dispatcher sees every call; the hook leaves with this run.
    schemathesis.hook("before_call")(confirm_as_a_client_would)
    try:
        for event in from_schema(mine).execute():
            verdict.problems.extend(describe(event))
            if (
                isinstance(event, ScenarioFinished)
                and event.phase is PhaseName.FUZZING
                and event.recorder.interactions
            ):
                verdict.fuzzed.add(event.recorder.label)
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(confirm_as_a_client_would)
    return verdict


async def test_the_api_keeps_its_openapi_contract(
    live_api: LiveServer, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    emails = [unique_email() for _ in range(SHARDS)]
    for email in emails:
        body = {"email": email, "password": PASSWORD, "confirm_password": PASSWORD}
        assert (await client.post("/v1/users", json=body)).status_code == 201
    # The engines run in processes of their own; the server answers from this event loop.
    operator = live_api.container.settings.operator_token.get_secret_value()
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(SHARDS, mp_context=spawn) as pool:
        verdicts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, run_shard, live_api.url, email, operator, shard)
                for shard, email in enumerate(emails)
            )
        )
    problems = [p for v in verdicts for p in v.problems]
    assert not problems, "\n\n".join(dict.fromkeys(problems))
    documented = {label for v in verdicts for label in v.documented}
    assert all(v.documented == documented for v in verdicts)
    assert len(documented) > 20
    assert {label for v in verdicts for label in v.fuzzed} == documented
