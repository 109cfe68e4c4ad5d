"""Strawberry types, inputs, enums and permissions; ``schema.py`` assembles them."""
