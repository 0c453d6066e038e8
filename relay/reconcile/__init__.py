"""Reconciliation: recover the events whose webhook deliveries AnyFormat gave up on.

AnyFormat publishes no list-deliveries or redeliver call, but it lists workflows and their
runs. The relay asks it what finished while nobody was receiving, and writes the events
that never arrived, through the same idempotent append as deliveries (``sweep``). When
that happens (a gap in the shared heartbeat, every interval, or by hand) is ``reconciler``.
"""
