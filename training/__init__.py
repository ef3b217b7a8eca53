"""worldloom training package."""
