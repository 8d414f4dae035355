"""Mass incidents (突發事件): detection from complaint spikes by event time."""
