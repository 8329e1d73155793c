"""``rlvr/Code-v0``: Python functions judged by hidden unit tests run in a sandbox."""
