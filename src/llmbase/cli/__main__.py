"""`python -m llmbase.cli`: the same as the `llmbase` command."""

from . import main

main()
