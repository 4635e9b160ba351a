"""`kpipe tune`: the search space and the Optuna study over the House Prices CV score."""
