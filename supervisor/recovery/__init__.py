"""Recovery: the policy (pure), port freeing (adapter) and the executor that joins them."""
