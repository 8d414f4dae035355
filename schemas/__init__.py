"""Wire formats of ticketstream: inbound events, dead-letter records, emitted records."""
