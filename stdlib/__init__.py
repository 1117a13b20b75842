"""The standard library of `.geo` specs (package data)."""
