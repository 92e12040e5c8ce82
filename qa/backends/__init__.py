"""Generator backends behind one seam: embedded llama.cpp, Ollama, OpenAI-compatible."""
