"""Answering: retrieve cited passages, generate, verify citations, abstain when unsupported."""
