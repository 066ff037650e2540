"""Built-in workloads. Each registers through the `accelbench.workloads` entry-point group."""
