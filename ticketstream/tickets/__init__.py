"""One ticket's process after triage: its state, the process the worker and replay share, its view."""
