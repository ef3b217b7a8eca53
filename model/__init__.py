"""worldloom model package."""
