"""worldloom pipeline package."""
