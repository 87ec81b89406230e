"""Policy as code: the pure decision and the loader of the policy directory."""
