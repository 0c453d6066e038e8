"""Failure injection under load; every scenario prints its counts into the test output."""
