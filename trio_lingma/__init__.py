"""trio_lingma: OpenAI- and Anthropic-compatible gateway for local Lingma runtimes."""

__version__ = "0.1.0"
