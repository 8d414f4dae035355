"""SLA clocks (限時辦結): the policy, China's working calendar, stage timings, the deadline index."""
