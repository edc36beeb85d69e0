"""flashsale: a laboratory for flash-sale inventory concurrency on PostgreSQL."""

__version__ = "0.1.0"
