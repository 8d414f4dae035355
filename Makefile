# The two commands of the README. Both set up everything they need on a fresh machine.
.PHONY: demo test bootstrap bench clean

VENV := .venv
PY := $(VENV)/bin/python

bootstrap:
	@bash deploy/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/ticketstream demo

test:
	@bash deploy/bootstrap.sh --with-monitoring
	$(PY) -m pytest -q

bench: bootstrap
	$(PY) tests/benchmarks/bench_intake.py

clean:
	-$(VENV)/bin/ticketstream kafka stop
	rm -rf .ticketstream .pytest_cache
