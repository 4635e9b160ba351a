"""Who may do what on the team's tracking server (`kpipe team-init`), with MLflow's own auth API.

The server runs MLflow's basic-auth app: every user may read (MLflow's default permission), and
a user may edit what it created. That default alone leaves two holes for a team: the first
teammate to log a run owns the experiment (the others get 403), and any user may create the
trusted registered model before the admin does and then promote what it likes. So the admin,
once, before handing out the users' passwords, runs `kpipe team-init --editor NAME ...`, which:

- creates the project's experiment, its registered model and the trusted model
  (`pipeline.common.registry`) where missing, all three owned by the admin;
- gives each editor EDIT on the experiment (log runs) and on the registered model (register
  versions);
- gives each editor READ on the trusted model, replacing any grant it had, so that only the admin
  promotes.

It runs as the admin (MLflow's MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or
~/.mlflow/credentials) and is safe to run again.
"""

from __future__ import annotations

import os
import urllib.parse
import warnings
from dataclasses import dataclass, field

from pipeline.common.errors import PipelineError
from pipeline.common.hosts import unresolved
from pipeline.common.paths import ProjectPaths
from pipeline.common.redact import redact
from pipeline.common.registry import trusted_model
from pipeline.common.tracking import command_calls, ensure_experiment, explain, on_server, tracking_uri

EDIT, READ = "EDIT", "READ"
EXPERIMENT, REGISTERED_MODEL = "experiment", "registered_model"  # MLflow's resource types


class AccessError(PipelineError):
    """The team's permissions could not be set (no server, not the admin, an unknown user)."""


@dataclass
class TeamAccess:
    """What `team-init` set: (user, resource, permission) rows, in order."""

    url: str
    grants: list[tuple[str, str, str]] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"{self.url}: every user may read (MLflow's default); the admin owns everything below"]
        lines += [f"  {user}: {permission} on {resource}" for user, resource, permission in self.grants]
        return "\n".join(lines)


def init_team(paths: ProjectPaths, experiment: str, model: str, editors: list[str]) -> TeamAccess:
    """The experiment, the registered model and the trusted model, owned by the admin; EDIT on the
    first two and READ on the third for each editor."""
    import mlflow.server
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    url = tracking_uri(paths)
    if not on_server(url):
        raise AccessError("kpipe team-init sets permissions on a tracking server; MLFLOW_TRACKING_URI is "
                          f"{redact(url)}")
    host = urllib.parse.urlsplit(url).hostname
    if host and (reason := unresolved([host])) is not None:
        raise AccessError(f"kpipe team-init on {redact(url)}: the host {host} does not resolve ({reason}); check "
                          "MLFLOW_TRACKING_URI")
    admin = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    with warnings.catch_warnings():  # Starlette's deprecation notice, from MLflow's server modules on import
        warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
        auth = mlflow.server.get_app_client("basic-auth", tracking_uri=url)
    client = MlflowClient(url)
    access = TeamAccess(redact(url))
    with command_calls():
        try:
            if not admin or not auth.get_user(admin).is_admin:
                raise AccessError("kpipe team-init must run as the tracking server's admin "
                                  f"(MLFLOW_TRACKING_USERNAME is {admin or 'not set'})")
            experiment_id = ensure_experiment(client, experiment, url)
            for name in (model, trusted_model(model)):
                _ensure_registered_model(client, name)
            for user in editors:
                auth.get_user(user)  # an unknown user is a clear error here, not a grant that fails later
                for resource_type, resource_id, label, permission in (
                        (EXPERIMENT, experiment_id, f"experiment {experiment!r}", EDIT),
                        (REGISTERED_MODEL, model, f"registered model {model!r}", EDIT),
                        (REGISTERED_MODEL, trusted_model(model), f"registered model {trusted_model(model)!r}", READ)):
                    _grant(auth, user, resource_type, resource_id, permission)
                    access.grants.append((user, label, permission))
        except MlflowException as exc:
            raise AccessError(f"kpipe team-init on {redact(url)}: {explain(exc)}") from exc
    return access


def _ensure_registered_model(client: object, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _grant(auth: object, user: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Set `user`'s permission on one resource, whatever it was before (MLflow's grant refuses to
    overwrite: the old grant is revoked first)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(user, resource_type, resource_id, permission)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(user, resource_type, resource_id)
        auth.grant_user_permission(user, resource_type, resource_id, permission)
