# The two commands of the README. Both set up everything they need on a fresh machine.
.PHONY: demo test chaos bootstrap bench clean

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

# The chaos test alone: three brokers, two workers, a worker and a broker killed under traffic,
# and a restart under a 20,000-event backlog (5.5-7.5 minutes here). `make test` runs it too.
chaos: bootstrap
	$(PY) -m pytest -q -s -m chaos tests/test_chaos.py

# Every benchmark, each against its baseline in the same run (a few minutes on 2 cores).
bench: bootstrap
	$(PY) tests/benchmarks/bench_triage.py
	$(PY) tests/benchmarks/bench_incidents.py
	$(PY) tests/benchmarks/eval_incidents.py --hours 2 --trials 20
	$(PY) tests/benchmarks/eval_triage.py
	$(PY) tests/benchmarks/bench_intake.py --events 20000 --repeat 2
	$(PY) tests/benchmarks/bench_sla.py --tickets 5000 --probes 100
	$(PY) tests/benchmarks/bench_archive.py --tickets 2000 --repeat 3

clean:
	-$(VENV)/bin/ticketstream kafka stop
	rm -rf .ticketstream .pytest_cache
