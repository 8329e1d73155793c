"""``rlvr/Ecom-v0``: shopping dialogues with tools, a scripted user and a state-diff reward."""

from rlvr.envs.ecom.env import EcomEnv
from rlvr.envs.ecom.families import FAMILIES

__all__ = ["FAMILIES", "EcomEnv"]
