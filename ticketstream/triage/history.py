"""Every customer's recent complaints (客戶投訴歷史), for repeat detection (二次投訴, DOMAIN §3).

A complaint is triaged by its ticket's owner, on the ticket's partition, and one customer's
tickets are spread over every partition. So each worker keeps the history of *every* customer:
the entry of each complaint it triages goes into its own copy at once and to the other workers
through a topic (`streams.customer_history`), whose entries each copy merges as they arrive.

Merging is by ticket id (an entry read twice, or read back by its writer, changes nothing) and
the window is pruned from the newest entry, so a copy holds the same entries whatever order they
arrived in. Repeat counting reads entries by occurrence time (`earlier_in_window`), so it does not
depend on that order either; what a copy cannot know is an entry another worker has not sent
yet (the replication lag, about a producer linger): two complaints of one customer triaged by
two workers within that lag do not count each other, as two that reach one worker out of
occurrence order do not.
"""

from __future__ import annotations

from ticketstream.triage.engine import HistoryEntry, remember


class CustomerHistories:
    """The recent complaints of every customer, by customer id."""

    def __init__(self, window_days: int) -> None:
        self.window_days = window_days
        self._by_customer: dict[str, list[HistoryEntry]] = {}

    def of(self, customer_id: str) -> list[HistoryEntry]:
        """The customer's complaints within the window of the newest, oldest first."""
        return self._by_customer.get(customer_id, [])

    def remember(self, customer_id: str, entry: HistoryEntry) -> None:
        """Add one complaint's entry (idempotent per ticket id)."""
        self._by_customer[customer_id] = remember(self.of(customer_id), entry, self.window_days)

    def forget_before(self, cutoff: float) -> int:
        """Drop the customers whose newest complaint is older than `cutoff` (epoch seconds): the
        window keeps each customer's entries near their newest one, not near today. Returns how
        many were dropped."""
        stale = [customer for customer, entries in self._by_customer.items() if entries[-1][2] < cutoff]
        for customer in stale:
            del self._by_customer[customer]
        return len(stale)

    def __len__(self) -> int:
        return len(self._by_customer)
