"""What `GET /health` answers: the service is up, its database answered, and how its pool stands."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PoolSnapshot(BaseModel):
    size: int = Field(ge=0, description="connections open")
    available: int = Field(ge=0, description="connections idle in the pool")
    waiting: int = Field(ge=0, description="requests waiting for a connection")


class HealthResponse(BaseModel):
    """The service is up and its database answered."""

    status: Literal["ok"]
    database: Literal["ok"]
    strategy: str
    admission: Literal["local", "shared", "fallback"] = Field(
        description="local: admission control (if any) per process; shared: in Redis for the whole service "
        "(`serve --admission redis`); fallback: Redis does not answer, this process applies its share of the limits"
    )
    pool: PoolSnapshot
