"""Development and test tools: never deployed (excluded in .funcignore)."""
