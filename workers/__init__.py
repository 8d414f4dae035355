"""Processes: the worker, the CLI, the publisher, the simulator, the demo, the embedded broker."""
