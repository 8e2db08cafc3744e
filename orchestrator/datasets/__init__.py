"""Image sets for demos and tests: a synthetic class-folder set and public downloads."""
