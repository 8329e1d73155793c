"""The trainer: rollouts, advantages, credit, losses, distillation and RELEX (torch)."""
