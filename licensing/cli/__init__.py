"""The admin CLI (`licensing`): argument parsing in main, one module per command family, rendering in render."""
