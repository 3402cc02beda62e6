"""``POST /ops/api/migrations/{name}/phase``: move a projector's migration one phase, as
``bloghub migrate phase`` does; every API and projector process follows within a poll."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import JSON, Endpoint, container, parse_body
from bloghub.api.ops_auth import require_operator
from bloghub.errors import Conflict, NotFound, Unavailable
from bloghub.migration_phases import MigrationRefused, Phase, PhaseRefused, reads_from
from bloghub.ops.migrate import MigrationStores, NotMigrated, TargetUnreachable, move


class PhaseMove(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Not strict: JSON's 2.0 is the integer 2, as the schema says; a string or a boolean
    # is still refused, and so is 2.5.
    phase: Annotated[
        int, Field(ge=1, le=4, strict=False, description="1 source only … 4 target only")
    ]

    @field_validator("phase", mode="before")
    @classmethod
    def _a_json_number(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("Input should be a valid integer")
        return value


class PhaseNow(BaseModel):
    projector: str
    generation: int
    phase: int
    reads_from: str


async def move_phase(request: Request) -> Response:
    await require_operator(request)
    body = await parse_body(request, PhaseMove)
    c = container(request)
    ms = MigrationStores.of(c.settings, c.engine, c.redis, c.search)
    try:
        migration = await move(ms, request.path_params["name"], Phase(body.phase))
    except NotMigrated as exc:
        raise NotFound(str(exc)) from exc
    except TargetUnreachable as exc:
        raise Unavailable(str(exc)) from exc
    except (MigrationRefused, PhaseRefused) as exc:
        raise Conflict(str(exc)) from exc
    finally:
        if ms.target is not None:
            await ms.target.dispose()
    now = PhaseNow(
        projector=migration.projector,
        generation=migration.generation,
        phase=int(migration.phase),
        reads_from=str(reads_from(migration.phase)),
    )
    return JSON(now.model_dump())


ENDPOINT = Endpoint(
    "POST",
    "/ops/api/migrations/{name}/phase",
    move_phase,
    "Move a projector's migration to another database one phase forward or back",
    "ops",
    body=PhaseMove,
    response=PhaseNow,
    auth=True,
    errors=(401, 404, 409, 415, 422, 429, 503),
)
