"""Command-line programs and orchestration (the only layer that parses arguments or draws progress bars)."""
