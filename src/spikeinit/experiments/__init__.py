"""The paper's experiments, and ours: propagation, numerical conditions."""
