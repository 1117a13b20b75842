"""Operator families; `registry` is the one table every pass and test asks."""
