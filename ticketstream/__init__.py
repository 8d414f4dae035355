"""ticketstream's functional core: plain, typed rules with no Kafka or Faust imports."""

__version__ = "0.1.0"
