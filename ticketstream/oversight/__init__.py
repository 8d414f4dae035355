"""What on-call sees: alerts (one model), the alert bridge's decisions, team overload counts."""
