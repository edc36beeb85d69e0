"""Why an order is refused. Each error has a stable machine-readable `code` that the CLI, the HTTP service
and the load runner report as is."""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "domain_error"


class SaleNotFound(DomainError):
    code = "sale_not_found"

    def __init__(self, sale_id: object) -> None:
        super().__init__(f"flash sale {sale_id} does not exist")


class UserNotFound(DomainError):
    code = "user_not_found"

    def __init__(self, user_id: object) -> None:
        super().__init__(f"user {user_id} does not exist")


class SaleNotActive(DomainError):
    code = "sale_not_active"

    def __init__(self, sale_id: object) -> None:
        super().__init__(f"flash sale {sale_id} is not active now")


class SoldOut(DomainError):
    code = "sold_out"

    def __init__(self, sale_id: object, *, remaining: int | None = None, requested: int | None = None) -> None:
        detail = "" if remaining is None else f": {remaining} left, {requested} requested"
        super().__init__(f"flash sale {sale_id} is sold out{detail}")


class PerUserLimitExceeded(DomainError):
    code = "per_user_limit_exceeded"

    def __init__(self, *, limit: int, already: int | None = None, requested: int | None = None) -> None:
        detail = "" if already is None else f" (already bought {already}, requested {requested})"
        super().__init__(f"the per-user limit of {limit} would be exceeded{detail}")


class InvalidQuantity(DomainError):
    code = "invalid_quantity"

    def __init__(self, quantity: object) -> None:
        super().__init__(f"quantity must be a whole number from 1 to 2147483647, got {quantity!r}")


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"

    def __init__(self, key: object) -> None:
        shown = repr(key) if len(repr(key)) <= 40 else repr(key)[:37] + "..."
        super().__init__(f"an idempotency key is 1 to 255 visible ASCII characters, got {shown}")


class IdempotencyKeyReused(DomainError):
    """The key already belongs to an order placed with other parameters (another user, sale or quantity)."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for an order with other parameters; "
            "use a new key for a new order"
        )


class IdempotencyKeyTaken(Exception):
    """Not a refusal: the order's idempotency key already has an order (placed by an earlier or concurrent request
    with the same key), so this one placed nothing. `flashsale.services.idempotency` answers it with that order."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} already has an order")
        self.key = key
