"""The Locust side of the load runner: the engine that drives Locust's master and workers from the asyncio runner
(`engine`), and what runs inside Locust's gevent processes (`locustfile`, `orders`). Nothing here but `engine` may
be imported from the asyncio process: Locust monkey-patches the standard library with gevent on import.
"""
