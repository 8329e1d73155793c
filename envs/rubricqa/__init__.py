"""``rlvr/RubricQA-v0``: open-ended writing tasks scored by programmatic rubrics."""

from rlvr.envs.rubricqa.env import RubricQAEnv

__all__ = ["RubricQAEnv"]
