"""Adapters for the model port (SGLang, OpenAI-compatible, llama.cpp, scripted); filled in by the model-port work."""
