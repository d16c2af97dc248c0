"""From environments to batches: env specs and creation, the env contract, env state, and the samplers
(sync in-process; process and Ray workers) that collect on-policy rollouts."""
