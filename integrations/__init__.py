"""Bridges from rlvr envs to other training libraries (``rlvr.integrations.trl`` for TRL).

Each bridge imports its library lazily, so ``import rlvr`` never needs it installed.
"""
