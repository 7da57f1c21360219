"""Stores: one module per concept. Each holds its row types and its queries as plans,
free of I/O; `llmbase.client` (sync) and `llmbase.aio` (async) execute them."""
