"""What a training run writes and watches: the run directory, checkpoints, progress logging, health alarms,
evaluation, callbacks, tracking, interrupts."""
