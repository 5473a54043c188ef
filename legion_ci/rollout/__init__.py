"""Rollouts decided by evidence: the sequential test (`sequential`), the decision (`decision`), the
evidence a decision reads (`evidence`: captured predictions joined with ground truth per variant) and a
vectorised simulator of the whole procedure (`simulate`), which the statistical test and docs/rollout.md use.
"""
