"""The composition layer: builds every part from the config and runs it."""
