"""The training lab: tasks, batched sweeps, the run store and reports."""
