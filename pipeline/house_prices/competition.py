"""House Prices' facts as a `Competition`, like any competition project's competition.yaml.

Built from the constants the House Prices modules already hold (the slug, the published
SHA-1 values, the id and target columns), so each fact keeps one place; what the generic
commands need (`kpipe runs`' metric and direction, `kpipe submit`'s slug, the submission's
columns) is read from here as it is from a competition file elsewhere.
"""

from __future__ import annotations

from pipeline.house_prices import COMPETITION
from pipeline.house_prices.dataset import HOUSE_PRICES as FILES
from pipeline.house_prices.schemas import ID, TARGET
from pipeline.tabular.competition import Competition, SubmissionFormat

HOUSE_PRICES = Competition(
    slug=COMPETITION, id_column=ID, target=TARGET, task="regression", metric="log_rmse",
    submission=SubmissionFormat((ID, TARGET), "values"),
    files={f.kaggle_name: f.sha1 for f in FILES.values()},
    module="pipeline.house_prices", title="House Prices - Advanced Regression Techniques")
