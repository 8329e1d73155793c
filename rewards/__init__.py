"""Verifiers and reward functions: pure, torch-free, callable on their own.

A scorer that cannot score raises or returns ``None``; it never quietly returns 0.
"""
