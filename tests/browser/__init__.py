"""Pages in a real headless Chromium against a real ``hotline serve`` (the ``live_server``).

Shared fixtures live in ``tests/browser/conftest.py``; screenshots go outside
the repository (``$HOTLINE_SCREENSHOT_DIR`` or pytest's temporary directory).
"""
