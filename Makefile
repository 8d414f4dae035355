# The two commands of the README. Both set up everything they need on a fresh machine.
.PHONY: demo test chaos bootstrap bench bench-others clean

VENV := .venv
PY := $(VENV)/bin/python

bootstrap:
	@bash deploy/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/ticketstream demo

test:
	@bash deploy/bootstrap.sh --with-monitoring
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# Just the chaos tests (part of `make test` too): three brokers, two workers, a worker and a broker
# killed under traffic, and a restart under a 20,000-event backlog (about 4 minutes here).
chaos: bootstrap
	$(PY) -m pytest -q -s -m chaos tests/test_chaos.py

# The benchmark report docs/benchmarks.md with its figures, from one run here (about 20 minutes
# on 2 cores; each against its baseline in the same run). Every script also runs on its own.
bench: bootstrap
	$(PY) tests/benchmarks/report.py

# The benchmarks and evaluations the report leaves out, printing text (a few minutes).
bench-others: bootstrap
	$(PY) tests/benchmarks/bench_core.py
	$(PY) tests/benchmarks/bench_incidents.py
	$(PY) tests/benchmarks/eval_incidents.py --hours 2 --trials 20
	$(PY) tests/benchmarks/eval_triage.py
	$(PY) tests/benchmarks/bench_archive.py --tickets 2000 --repeat 3

clean:
	-$(VENV)/bin/ticketstream kafka stop
	rm -rf .ticketstream .pytest_cache
