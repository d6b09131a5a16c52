"""workflow layer (docs/design.md)."""
