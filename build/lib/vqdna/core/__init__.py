"""core layer (docs/design.md)."""
