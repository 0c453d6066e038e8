"""Where deliveries go: routing rules, key layout, and the atomic fan-out writer."""
