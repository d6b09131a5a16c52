"""analysis layer (docs/design.md)."""
