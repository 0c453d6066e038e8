"""The inbound path: read the body within limits, verify, parse, hand to the fan-out."""
