"""The geo compiler: checking, the typed IR, the operator registry, passes and backends."""
