"""Many processes and many nodes: launchers, Slurm, fabric detection, the scaling model."""
