"""The python-backend models a generated repository's ``model.py`` shims load (run inside Triton's stub)."""
