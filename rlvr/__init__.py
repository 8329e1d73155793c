"""rlvr-gym: multi-turn text environments with verifiable rewards, and a trainer for them.

``import rlvr`` registers every ``rlvr/...`` env with Gymnasium::

    import gymnasium as gym
    import rlvr

    gym.register_envs(rlvr)
    env = gym.make("rlvr/Math-v0", difficulty=2)
"""

from __future__ import annotations

from rlvr.envs import ENV_SPECS, register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["ENV_SPECS", "__version__", "register_envs"]
