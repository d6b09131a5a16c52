"""model layer (docs/design.md)."""
