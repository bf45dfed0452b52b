"""Suite-wide settings.

Under CI (``CI=true``) hypothesis runs derandomized: the same examples every run, so a submission
is judged on its code, not on the luck of a random search. Locally it searches afresh each run,
which is how new counterexamples are found (and then pinned as explicit tests)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
