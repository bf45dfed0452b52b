"""Fixed answers of the simulated binary: initialize, auth status, the model catalogue.

Shapes follow lingma-protocol.md §2.1 (InitializeResult), §2.2 (AuthStatus, as Clawith's stub
answers it) and §5 (``config/queryModels``: scene → list of ChatModelItem, the 2.11.x personal
sample of model keys). Functions return fresh dicts so callers may not share mutable state.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SERVER_VERSION",
    "auth_status",
    "initialize_result",
    "is_reasoning_model",
    "model_catalogue",
]

SERVER_VERSION = "2.11.1-sim"

# (key, displayName, isReasoning, isVl)
_MODELS = (
    ("dashscope_qwen3_coder_default", "Auto", False, False),
    ("dashscope_qwen3_coder", "qwen3-coder", False, False),
    ("dashscope_qwen_plus_20250428_thinking", "qwen3-thinking", True, False),
    ("dashscope_qwen_max_latest", "qwen2.5-max", False, True),
)
_SCENES = ("chat", "assistant", "developer", "inline")


def initialize_result() -> dict[str, Any]:
    return {
        "capabilities": {
            "textDocumentSync": {"openClose": True, "change": 2, "save": True},
            "workspace": {"workspaceFolders": {"supported": True}},
        },
        "serverInfo": {"name": "Lingma", "version": SERVER_VERSION},
        "experimental": {},
    }


def auth_status(status: int = 2) -> dict[str, Any]:
    """``AuthStatus``; ``status`` 2 = LOGIN, 1 = NOT_LOGIN, 3 = LOGIN_EXPIRED (§2.2)."""
    return {
        "status": status,
        "name": "simulator",
        "id": "sim-user",
        "accountId": "sim",
        "token": "",
        "whitelist": 3,
        "privacyPolicyAgreed": True,
    }


def _item(key: str, display: str, reasoning: bool, vl: bool) -> dict[str, Any]:
    return {
        "key": key,
        "displayName": display,
        "format": "openai",
        "source": "system",
        "isReasoning": reasoning,
        "isVl": vl,
        "url": "",
        "apiKey": "",
        "model": "",
    }


def model_catalogue() -> dict[str, list[dict[str, Any]]]:
    """``config/queryModels``: every scene lists the same four models."""
    return {scene: [_item(*model) for model in _MODELS] for scene in _SCENES}


def is_reasoning_model(key: str) -> bool:
    """True for model keys whose turns stream ``chat/think`` (qwen3-thinking)."""
    return any(k == key and reasoning for k, _, reasoning, _ in _MODELS)
