"""data layer (docs/design.md)."""
