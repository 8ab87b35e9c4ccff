"""Fake upstream servers that speak real protocols, each with fault modes switched at runtime.

``python -m fakes.llm``: an OpenAI-compatible model server; ``python -m fakes.mcp``: an MCP server
over Streamable HTTP. See docs/fakes.md.
"""
