"""Small example environments (`trpo.examples.safe_envs`: constrained tasks reporting `info["cost"]`)."""
