"""train layer (docs/design.md)."""
