"""What happens to a submission file once a model has written it, for any competition.

`source`: what made the file (the MLflow runs, the registered model version, the commit, the
CV), recorded by the stages beside the model and the file. `log`: the committed submission log,
one row per Kaggle submission. `scores`: the scores Kaggle returns, back onto the MLflow runs
and the model version. `spend`: the checks before a submission is spent. `leaderboard`: CV
against the public score. `workflow`: `kpipe submit` and `kpipe submissions` over all of them.
"""
