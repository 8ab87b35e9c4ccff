"""Fake upstream servers that speak real protocols."""
