"""The Faust shell: agents that move records between topics, tables and the functional core."""
