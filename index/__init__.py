"""Ingestion: documents -> cleaned blocks -> passages -> embeddings -> a persisted FAISS + BM25 index."""
