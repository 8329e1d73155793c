"""Scripted solvers: one per env, reading only the observations."""
