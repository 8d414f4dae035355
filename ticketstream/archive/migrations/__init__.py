"""Alembic migrations of the archive, shipped in the package and run by `ticketstream archive
migrate` (and by the archiver at start): the schema of a deployed archive changes only here."""
