"""The archive (歸檔): every ticket, its event history, SLA events and incidents in SQL.

The pure parts (row mapping, personal-data protection, retention arithmetic, KPI computation)
import neither Kafka nor SQLAlchemy, so they are tested on their own and the same code serves
the archiver, the query commands and the benchmarks. `store` is the SQLAlchemy layer (SQLite and
PostgreSQL through one code path), `migrations/` its Alembic schema history.
"""
