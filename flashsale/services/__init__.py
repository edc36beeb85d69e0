"""The services of the domain, over the strategies and the repositories: placing an order at most once per
idempotency key (`idempotency`), asynchronous orders and their settlement (`settlement`), the oversell audit
(`audit`), a sale's scenario (`scenario`) and a crowd of buyers at one instant (`crowd`).
"""
