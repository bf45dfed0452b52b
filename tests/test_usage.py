from __future__ import annotations

from trio_lingma.observability.usage import UsageLedger, key_fingerprint


def test_ledger_counts_per_model_and_key() -> None:
    ledger = UsageLedger()
    ledger.record(model="qwen3-coder", key="sk-secret-1", ok=True, input_tokens=10, output_tokens=5)
    ledger.record(model="qwen3-coder", key="sk-secret-1", ok=False)
    ledger.record(model="Auto", key=None, ok=True, input_tokens=3, output_tokens=1)
    snap = ledger.snapshot()
    assert snap["models"]["qwen3-coder"] == {"requests": 2, "errors": 1, "input_tokens": 10, "output_tokens": 5}
    assert snap["keys"][key_fingerprint("sk-secret-1")]["requests"] == 2
    assert snap["keys"]["anonymous"]["input_tokens"] == 3
    assert "sk-secret-1" not in repr(snap)


def test_fingerprints_are_stable_short_and_distinct() -> None:
    a, b = key_fingerprint("sk-a"), key_fingerprint("sk-b")
    assert a == key_fingerprint("sk-a") and a != b
    assert a.startswith("key-") and len(a) == len("key-") + 8
