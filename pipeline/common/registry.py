"""Which registered model versions the team trusts, and how a version becomes trusted.

Every `train` registers a new version of the project's model (`house-prices`, or a competition
project's slug): whoever may log runs may add one, so a version is only as trustworthy as the
run that made it. What the team loads and serves comes from a second registered model,
`<name>-trusted`, which only the tracking server's admin writes (`kpipe team-init` gives no one
else more than READ on it). `kpipe promote N` copies version N there (MLflow's
`copy_model_version`: the same artifacts, a new version that remembers its source) and points
the alias `champion` at the copy; `kpipe predict --champion` and
`mlflow models serve -m models:/<name>-trusted@champion` load it.

Why a second model rather than an alias on the first: MLflow's basic-auth app checks setting an
alias with the same permission as registering a version (EDIT on the registered model), so on
one model anyone who may register could also move `champion`. MLflow's own docs promote a
version across environments the same way: `copy_model_version` into a model with permissions of
its own.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import os
import re
from dataclasses import dataclass
from typing import Any

from pipeline.common.errors import PipelineError
from pipeline.common.paths import ProjectPaths
from pipeline.common.redact import redact
from pipeline.common.tracking import command_calls, explain, on_server, tracking_uri

CHAMPION = "champion"
TRUSTED_SUFFIX = "-trusted"
# Tags on a promoted copy: what it was copied from, and who copied it.
PROMOTED_FROM_TAG = "promoted_from"
PROMOTED_BY_TAG = "promoted_by"


class PromotionRefused(PipelineError):
    """The version cannot be promoted (no such version, no permission, no trusted model yet)."""


def trusted_model(name: str) -> str:
    """The registered model of the versions the team trusts: `house-prices` -> `house-prices-trusted`."""
    return f"{name}{TRUSTED_SUFFIX}"


def champion_uri(name: str) -> str:
    """The model URI the team loads and serves: `models:/house-prices-trusted@champion`."""
    return f"models:/{trusted_model(name)}@{CHAMPION}"


def trust_note(uri: str, name: str, paths: ProjectPaths) -> str | None:
    """On a team's tracking server, a note that `uri` is not a promoted version (it runs code that
    whoever registered it wrote); None for a trusted URI or a local store."""
    if not on_server(tracking_uri(paths)) or not uri.startswith("models:/"):
        return None
    if re.split(r"[/@]", uri.removeprefix("models:/"), maxsplit=1)[0] == trusted_model(name):
        return None
    return (f"note: {uri} is not a version the team's admin promoted; loading a model runs its code. The "
            f"trusted one is {champion_uri(name)} (`kpipe predict --champion`).")


@dataclass(frozen=True)
class Promotion:
    source: str     # models:/house-prices/3
    version: str    # of the trusted model
    run_id: str     # the training run of both

    def describe(self, name: str) -> str:
        return (f"promoted {self.source} as {trusted_model(name)} version {self.version}; alias {CHAMPION} "
                f"now points at it: {champion_uri(name)}")


def _user() -> str:
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def promote(paths: ProjectPaths, name: str, version: str) -> Promotion:
    """Copy version `version` of `name` into the trusted model and point `champion` at the copy.

    On a tracking server the trusted model must exist already (`kpipe team-init`, run by the
    admin, creates it): otherwise the first user to promote would create it and own it. On a local
    store, with one user, the first promotion creates it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(paths)
    client = MlflowClient(uri)
    trusted = trusted_model(name)
    source = f"models:/{name}/{version}"
    with command_calls():
        try:
            found = client.get_model_version(name, version)
            if on_server(uri) and not _exists(client, trusted):
                raise PromotionRefused(f"the registered model {trusted!r} does not exist on {redact(uri)}: the "
                                       "tracking server's admin creates it first, with `kpipe team-init`")
            with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints its registration steps there
                copy = client.copy_model_version(source, trusted)
            client.set_registered_model_alias(trusted, CHAMPION, copy.version)
            client.set_model_version_tag(trusted, copy.version, PROMOTED_FROM_TAG, f"{name}/{version}")
            client.set_model_version_tag(trusted, copy.version, PROMOTED_BY_TAG, _user())
        except MlflowException as exc:
            raise PromotionRefused(f"cannot promote {source}: {_why(exc, trusted)}") from exc
    return Promotion(source=source, version=str(copy.version), run_id=found.run_id)


def _exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def _why(exc: Any, trusted: str) -> str:
    if "error code 403" in str(exc) or exc.error_code == "PERMISSION_DENIED":
        return (f"only a user with EDIT on the registered model {trusted!r} may promote (the tracking server's "
                f"admin; `kpipe team-init` gives no one else more than READ)")
    if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
        return exc.message.strip().splitlines()[0]
    return explain(exc)
