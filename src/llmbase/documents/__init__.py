"""The document store for RAG: collections, documents, chunks, search (docs/documents.md)."""
