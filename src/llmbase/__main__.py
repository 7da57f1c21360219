"""`python -m llmbase` runs the CLI."""

from .cli import main

main()
