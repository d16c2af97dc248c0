"""The on-policy learner and its policy steps: TRPO, NPG and PPO as siblings, and how a learner is loaded.

`learner.Learner` owns collection, advantages, the critic fit, diagnostics, checkpoints and save/load;
`npg.NPG`, `trpo.TRPO` (NPG + line search, as in the paper), `ppo.PPO`, and for environments with costs
`cpo.CPO` and `trpo_lag.TRPOLagrangian` each supply their policy step.
Importing this package registers every algorithm, so that `load` finds the class a model was saved from.
"""

from trpo.algos import cpo, npg, ppo, trpo, trpo_lag  # noqa: F401  (registration)
