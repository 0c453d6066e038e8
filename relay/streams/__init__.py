"""Where deliveries go: routing rules, the idempotent append and the atomic fan-out writer,
trimming and stream health; the Redis mechanics under them are ``relay.redis``'s."""
