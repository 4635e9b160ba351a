"""A loopback stand-in for the part of Kaggle's public API that one competition's workflow uses.

It follows the protocol of **kaggle 2.2.5 / kagglesdk 0.1.38** (the versions in the project's
virtualenv), read from their source: the client sends every API call as
``POST {endpoint}/api/v1/{service}/{Method}`` with a JSON body of camelCase fields
(``kagglesdk.kaggle_http_client.KaggleHttpClient._get_request_url`` / ``_prepare_request``), and
authenticates with ``Authorization: Bearer <token>`` (``KAGGLE_API_TOKEN`` or
``~/.kaggle/access_token``) or HTTP basic auth ``username:key`` (``kaggle.json`` or
``KAGGLE_USERNAME`` + ``KAGGLE_KEY``).

How the unmodified client is pointed here: ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` makes
``KaggleApi`` use ``KaggleEnv.LOCAL``, whose endpoint is the fixed ``http://localhost`` (port
80; kagglesdk has no variable for another host or port, and ``KaggleApi`` never selects
``KaggleEnv.TEST``). ``requests`` honours ``http_proxy``, so with ``http_proxy`` set to this
server every request for ``http://localhost/...`` arrives here in absolute form.
:meth:`KaggleStandIn.client_env` returns exactly those variables (and empties ``no_proxy``,
which would otherwise exempt ``localhost``). ``KAGGLE_API_ENVIRONMENT`` must be set before
``kaggle`` is first imported: ``KaggleApi.args`` is computed once, at class definition.

Endpoints (service ``competitions.CompetitionApiService`` unless noted):

* ``security.OAuthService/IntrospectToken`` -- ``KaggleApi.authenticate()`` with a bearer token.
  RFC 7662 style: HTTP 200 with ``{"active": false}`` for an unknown token, which the client
  treats as "no token" (it then falls back to ``kaggle.json``, else prints help and ``exit(1)``).
* ``DownloadDataFiles`` -- ``competition_download_files`` / ``kaggle competitions download``:
  a 302 to a signed storage URL on this server (another host, so ``requests`` drops the
  Authorization header, as with Kaggle's redirect to Google Cloud Storage), which serves the
  competition's real zip with ``Content-Length`` and ``Last-Modified``.
* ``DownloadDataFile`` (one file, 302 to its bytes), ``ListDataFiles`` (``kaggle competitions
  files``).
* ``StartSubmissionUpload`` -> ``{"token", "createUrl"}``; the client then ``PUT``\\ s the file's
  bytes to ``createUrl`` (expects 200/201) and calls ``CreateSubmission`` with
  ``blobFileTokens`` = that token and ``submissionDescription`` = the message; the answer is
  ``{"message", "ref"}``.
* ``ListSubmissions``, ``GetSubmission`` (``kaggle competitions submission <ref>`` and
  ``submit --wait``), ``GetSubmissionLimits`` (``kaggle competitions submission-limits``; the
  CLI's submit asks it for "N submissions remaining today"): ``numToday``, ``numTotal``,
  ``numAllowedNow`` (the daily limit less today's submissions), ``limitedByTotal``.
* ``GetLeaderboard`` (``kaggle competitions leaderboard --show``: one page of
  ``{teamId, teamName, submissionDate, score}``, best first, and ``nextPageToken``) and
  ``DownloadLeaderboard`` (``--download``: a 302 to a zip of one CSV,
  ``TeamId,TeamName,SubmissionDate,Score``). The leaderboard holds the ``leaderboard`` teams
  given to the constructor and each user's best scored submission.

A submission starts ``PENDING`` and becomes ``COMPLETE`` once it has been read
``pending_reads`` times (by ``ListSubmissions``/``GetSubmission``) *and* ``scoring_delay``
seconds have passed; a file that is not a valid submission becomes ``ERROR`` with an
``errorDescription`` instead. :meth:`KaggleStandIn.reveal_private` plays the competition's end:
every scored submission gets a ``privateScore``.

**The public score is not Kaggle's.** The hidden answers are not available locally, so the
stand-in scores the competition's metric -- RMSE between the logarithms of predicted and
"true" ``SalePrice`` -- against the ``SalePrice`` column of ``sample_submission.csv`` from the
archive (itself only a baseline prediction). It is deterministic: the sample submission scores
0.00000 and a constant 180000 scores 0.09044. It only shows that a score arrives.

Refusals, with the status and body the SDK reads (``KaggleHttpClient._prepare_response``
raises ``requests.HTTPError(body["message"])`` for a JSON body with ``code >= 400``, else
``raise_for_status()``):

* bad or missing credentials -> 401 with a non-JSON body, as api.kaggle.com answers
  (Kaggle/kaggle-cli#831: ``401 Client Error: Unauthorized for url: .../DownloadDataFiles``);
* competition rules not accepted (``rules_accepted=False``) -> 403 ``{"code": 403, "message":
  "You must accept this competition's rules before you'll be able to ..."}`` on downloads and
  on both submission calls;
* daily submission limit reached (``daily_limit``) -> 429 ``{"code": 429, "message": "Your
  team has used its daily Submission allowance (N) today, ..."}`` on ``CreateSubmission``.
  (The real service's wording and status for this case could not be checked offline.)
* unknown competition -> 404 ``{"code": 404, ...}``.

Standard library only; every request is recorded in :attr:`KaggleStandIn.requests`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import email.utils
import io
import itertools
import json
import math
import secrets
import socket
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMPETITION = "house-prices-advanced-regression-techniques"
COMPETITION_TITLE = "House Prices - Advanced Regression Techniques"
# Kaggle's download archive, committed with the project.
ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "external" / f"{COMPETITION}.zip"
KAGGLESDK_VERSION = "0.1.38"
KAGGLE_VERSION = "2.2.5"

API_PREFIX = "/api/v1/"
STORAGE_PREFIX = "/_storage/"


@dataclass
class Submission:
    """One submission as the stand-in holds it; `content` is exactly the uploaded bytes."""

    ref: int
    username: str
    file_name: str
    content: bytes
    description: str
    date: datetime
    created: float  # time.monotonic() at creation
    status: str = "PENDING"  # PENDING, COMPLETE or ERROR (kagglesdk SubmissionStatus names)
    public_score: str | None = None
    private_score: str | None = None
    error_description: str | None = None
    reads: int = 0


@dataclass
class Upload:
    token: str
    username: str
    file_name: str
    content_length: int
    content: bytes | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str  # without scheme, host or query
    host: str
    status: int
    auth: str | None  # "bearer:<user>", "basic:<user>", "invalid" or None


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, json_body: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.json_body = json_body


def _iso(dt: datetime) -> str:
    """kagglesdk's DateTimeSerializer format: ISO 8601, milliseconds, 'Z', no offset."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class KaggleStandIn:
    """The stand-in server. Use as a context manager (``with KaggleStandIn(...) as kaggle:``).

    Args:
        tokens: valid API tokens (bearer auth) -> the username each belongs to.
        api_keys: valid legacy keys: username -> key (basic auth).
        daily_limit: submissions a user may create per UTC day; ``None`` for no limit.
        rules_accepted: whether the users have accepted the competition rules (mutable).
        scoring_delay: seconds before a submission can leave ``PENDING``.
        pending_reads: how many reads (list/get) show a submission as ``PENDING`` first.
        archive: the zip served as the competition's data.
        scorer: the public score (or an error) of a submission's bytes, for another competition than
            House Prices (whose metric is built in).
        leaderboard: the other teams' best public scores, (team name, score).
        greater_is_better: the leaderboard's order (House Prices: lower is better).
        first_ref: the first submission's ref; Kaggle's refs only grow, across sessions too.
    """

    def __init__(
        self,
        *,
        tokens: dict[str, str] | None = None,
        api_keys: dict[str, str] | None = None,
        daily_limit: int | None = 5,
        rules_accepted: bool = True,
        scoring_delay: float = 0.0,
        pending_reads: int = 1,
        archive: Path = ARCHIVE,
        competition: str = COMPETITION,
        scorer: Callable[[bytes], tuple[str | None, str | None]] | None = None,
        leaderboard: Sequence[tuple[str, float]] = (),
        greater_is_better: bool = False,
        first_ref: int = 40_000_001,
    ) -> None:
        self.tokens = dict(tokens or {})
        self.api_keys = dict(api_keys or {})
        self.daily_limit = daily_limit
        self.rules_accepted = rules_accepted
        self.scoring_delay = scoring_delay
        self.pending_reads = pending_reads
        self.competition = competition
        self.archive = Path(archive)
        self.archive_bytes = self.archive.read_bytes()
        self.archive_mtime = self.archive.stat().st_mtime
        with zipfile.ZipFile(io.BytesIO(self.archive_bytes)) as zf:
            self.members = {info.filename: zf.read(info) for info in zf.infolist()}
            self.member_dates = {info.filename: datetime(*info.date_time) for info in zf.infolist()}
        # Another competition (`kpipe new --competition`) brings its own scorer of submission bytes.
        self.scorer = scorer
        self.answers = _read_prices(self.members["sample_submission.csv"]) if scorer is None else {}
        self.teams = list(leaderboard)
        self.greater_is_better = greater_is_better

        self.submissions: list[Submission] = []
        self.uploads: dict[str, Upload] = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._refs = itertools.count(first_ref)
        self._signature = secrets.token_urlsafe(16)  # "signs" the storage URLs
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KaggleStandIn:
        standin = self

        class Handler(_Handler):
            owner = standin

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kaggle-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the connections clients keep alive and join every thread."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def threads_alive(self) -> int:
        """Server and connection threads still running (0 after :meth:`stop`)."""
        threads = [self._thread] if self._thread is not None else []
        if self._server is not None:
            threads += self._server.all_threads
        return sum(t.is_alive() for t in threads)

    def __enter__(self) -> KaggleStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """This server's own address, e.g. ``http://127.0.0.1:41234``."""
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that route the real ``kaggle`` client here (see module doc).

        Credentials are not included: put them in ``KAGGLE_API_TOKEN`` / ``KAGGLE_USERNAME`` +
        ``KAGGLE_KEY`` or in files under a throwaway ``HOME`` (:func:`write_credentials`).
        """
        return {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "http_proxy": self.url,
            "HTTP_PROXY": self.url,
            "no_proxy": "",
            "NO_PROXY": "",
        }

    # -- state helpers for tests ---------------------------------------------------------------

    def submissions_for(self, username: str) -> list[Submission]:
        with self._lock:
            return [s for s in self.submissions if s.username == username]

    def score(self, content: bytes) -> tuple[str | None, str | None]:
        """(public score, None) or (None, error description) for a submission file."""
        if self.scorer is not None:
            return self.scorer(content)
        try:
            predicted = _read_prices(content)
        except ValueError as exc:
            return None, str(exc)
        missing = self.answers.keys() - predicted.keys()
        extra = predicted.keys() - self.answers.keys()
        if missing or extra:
            return None, (f"Submission must have {len(self.answers)} rows with the test set's Ids: "
                          f"{len(missing)} missing, {len(extra)} unexpected")
        if any(not (math.isfinite(v) and v > 0) for v in predicted.values()):
            return None, "SalePrice must be a positive number in every row"
        squared = [(math.log(predicted[i]) - math.log(self.answers[i])) ** 2 for i in self.answers]
        return f"{math.sqrt(sum(squared) / len(squared)):.5f}", None

    def reveal_private(self, offset: float) -> None:
        """The competition ends: every scored submission's private score is its public one + `offset`."""
        with self._lock:
            for sub in self.submissions:
                if sub.public_score is not None:
                    sub.private_score = f"{float(sub.public_score) + offset:.5f}"

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        """Every team's best public score, best first (the other teams, then each user's best)."""
        epoch = datetime(2026, 1, 1, tzinfo=UTC)
        rows = [{"teamId": 1000 + i, "teamName": team, "submissionDate": _iso(epoch), "score": f"{score:.5f}"}
                for i, (team, score) in enumerate(self.teams)]
        best: dict[str, Submission] = {}
        for sub in self.submissions:
            if sub.public_score is None:
                continue
            held = best.get(sub.username)
            if held is None or (float(sub.public_score) > float(held.public_score)) == self.greater_is_better:
                best[sub.username] = sub
        rows += [{"teamId": 9000 + i, "teamName": user, "submissionDate": _iso(sub.date), "score": sub.public_score}
                 for i, (user, sub) in enumerate(sorted(best.items()))]
        return sorted(rows, key=lambda r: float(r["score"]), reverse=self.greater_is_better)

    def _leaderboard_zip(self) -> bytes:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["TeamId", "TeamName", "SubmissionDate", "Score"])
        for row in self.leaderboard_rows():
            writer.writerow([row["teamId"], row["teamName"], row["submissionDate"], row["score"]])
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr(f"{self.competition}-publicleaderboard.csv", text.getvalue())
        return out.getvalue()

    # -- API ---------------------------------------------------------------------------------

    def _auth(self, header: str | None) -> str:
        """The caller's username, or ApiError(401)."""
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value in self.tokens:
                return self.tokens[value]
            if scheme.lower() == "basic":
                try:
                    user, _, key = base64.b64decode(value, validate=True).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    user, key = "", ""
                if user in self.api_keys and secrets.compare_digest(self.api_keys[user], key):
                    return user
        raise ApiError(401, "Unauthorized", json_body=False)

    def _competition(self, body: dict[str, Any]) -> None:
        name = body.get("competitionName", "")
        if name != self.competition:
            raise ApiError(404, f"Competition '{name}' not found")

    def _rules(self, action: str) -> None:
        if not self.rules_accepted:
            raise ApiError(403, f"You must accept this competition's rules before you'll be able to {action}. "
                                f"Visit https://www.kaggle.com/competitions/{self.competition}/rules")

    def _advance(self, sub: Submission) -> None:
        sub.reads += 1
        if sub.status != "PENDING":
            return
        if sub.reads > self.pending_reads and time.monotonic() - sub.created >= self.scoring_delay:
            score, error = self.score(sub.content)
            if error is None:
                sub.status, sub.public_score = "COMPLETE", score
            else:
                sub.status, sub.error_description = "ERROR", error

    @staticmethod
    def _submission_json(sub: Submission) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": sub.ref,
            "totalBytes": len(sub.content),
            "date": _iso(sub.date),
            "description": sub.description,
            "fileName": sub.file_name,
            "status": sub.status,
            "submittedBy": sub.username,
            "submittedByRef": sub.username,
            "teamName": sub.username,
            "url": f"/submissions/{sub.ref}/{sub.ref}.raw",
        }
        if sub.public_score is not None:
            out["publicScore"] = sub.public_score
        if sub.private_score is not None:
            out["privateScore"] = sub.private_score
        if sub.error_description is not None:
            out["errorDescription"] = sub.error_description
        return out

    def _today(self, username: str) -> int:
        today = datetime.now(UTC).date()
        return sum(1 for s in self.submissions if s.username == username and s.date.date() == today)

    def _limits(self, username: str) -> dict[str, Any]:
        today = self._today(username)
        total = sum(1 for s in self.submissions if s.username == username)
        allowed = 1_000_000 if self.daily_limit is None else max(self.daily_limit - today, 0)
        return {"numToday": today, "numTotal": total, "numAllowedNow": allowed, "limitedByTotal": False}

    def api(self, method: str, body: dict[str, Any], auth_header: str | None) -> tuple[int, Any]:
        """One RPC. Returns (status, JSON body) or (302, location); raises ApiError."""
        if method == "security.OAuthService/IntrospectToken":
            user = self.tokens.get(body.get("token", ""))
            if user is None:
                return 200, {"active": False}
            return 200, {"active": True, "username": user, "clientId": "kaggle-standin",
                         "scope": "resources.admin:*"}

        service, _, rpc = method.partition("/")
        if service != "competitions.CompetitionApiService":
            raise ApiError(404, f"Unknown service {service!r}")
        user = self._auth(auth_header)
        if rpc != "GetSubmission":  # the one call that names a submission, not a competition
            self._competition(body)
        with self._lock:
            if rpc == "DownloadDataFiles":
                self._rules("download files")
                return 302, self._storage_url(f"archive/{self.competition}.zip")
            if rpc == "DownloadDataFile":
                self._rules("download files")
                name = body.get("fileName", "")
                if name not in self.members:
                    raise ApiError(404, f"File '{name}' not found")
                return 302, self._storage_url("files/" + urllib.parse.quote(name))
            if rpc == "ListDataFiles":
                files = [{"ref": n, "name": n, "totalBytes": len(b), "url": f"/files/{n}",
                          "creationDate": _iso(self.member_dates[n].replace(tzinfo=UTC))}
                         for n, b in sorted(self.members.items())]
                return 200, {"files": files}
            if rpc == "StartSubmissionUpload":
                self._rules("submit")
                token = "blob-" + secrets.token_urlsafe(12)
                self.uploads[token] = Upload(token, user, body.get("fileName", ""),
                                             int(body.get("contentLength", 0)))
                return 200, {"token": token, "createUrl": self._storage_url(f"upload/{token}")}
            if rpc == "CreateSubmission":
                self._rules("submit")
                upload = self.uploads.get(body.get("blobFileTokens", ""))
                if upload is None or upload.username != user or upload.content is None:
                    raise ApiError(400, "Unknown or incomplete blob upload")
                if self.daily_limit is not None and self._today(user) >= self.daily_limit:
                    raise ApiError(429, f"Your team has used its daily Submission allowance ({self.daily_limit}) "
                                        "today, please try again tomorrow UTC.")
                sub = Submission(ref=next(self._refs), username=user, file_name=upload.file_name,
                                 content=upload.content, description=body.get("submissionDescription", ""),
                                 date=datetime.now(UTC), created=time.monotonic())
                self.submissions.append(sub)
                title = COMPETITION_TITLE if self.scorer is None else self.competition
                return 200, {"message": f"Successfully submitted to {title}", "ref": sub.ref}
            if rpc == "ListSubmissions":
                mine = sorted((s for s in self.submissions if s.username == user),
                              key=lambda s: s.ref, reverse=True)
                for sub in mine:
                    self._advance(sub)
                return 200, {"submissions": [self._submission_json(s) for s in mine]}
            if rpc == "GetSubmission":
                sub = next((s for s in self.submissions if s.ref == int(body.get("ref", 0))
                            and s.username == user), None)
                if sub is None:
                    raise ApiError(404, "Submission not found")
                self._advance(sub)
                return 200, self._submission_json(sub)
            if rpc == "GetSubmissionLimits":
                return 200, self._limits(user)
            if rpc == "GetLeaderboard":
                rows = self.leaderboard_rows()
                size = int(body.get("pageSize") or 20)
                start = int(body.get("pageToken") or 0)
                following = str(start + size) if start + size < len(rows) else ""
                return 200, {"submissions": rows[start:start + size], "nextPageToken": following}
            if rpc == "DownloadLeaderboard":
                return 302, self._storage_url(f"leaderboard/{self.competition}.zip")
        raise ApiError(404, f"Unknown method {method!r}")

    def _storage_url(self, path: str) -> str:
        return f"{self.url}{STORAGE_PREFIX}{path}?sig={self._signature}"

    def storage(self, verb: str, path: str, query: dict[str, list[str]], body: bytes | None
                ) -> tuple[int, bytes, dict[str, str]]:
        """Signed-URL storage: GET the archive or a file, PUT an upload."""
        if query.get("sig") != [self._signature]:
            return 403, b"bad signature", {"Content-Type": "text/plain"}
        rest = path[len(STORAGE_PREFIX):]
        if verb == "GET" and rest == f"archive/{self.competition}.zip":
            return 200, self.archive_bytes, {
                "Content-Type": "application/zip",
                "Last-Modified": email.utils.formatdate(self.archive_mtime, usegmt=True),
                "ETag": f'"{len(self.archive_bytes)}-{int(self.archive_mtime)}"',
            }
        if verb == "GET" and rest == f"leaderboard/{self.competition}.zip":
            with self._lock:
                content = self._leaderboard_zip()
            return 200, content, {"Content-Type": "application/zip",
                                  "Last-Modified": email.utils.formatdate(time.time(), usegmt=True)}
        if verb == "GET" and rest.startswith("files/"):
            name = urllib.parse.unquote(rest[len("files/"):])
            if name in self.members:
                return 200, self.members[name], {"Content-Type": "application/octet-stream"}
        if verb == "PUT" and rest.startswith("upload/"):
            with self._lock:
                upload = self.uploads.get(rest[len("upload/"):])
                if upload is None:
                    return 404, b"no such upload", {"Content-Type": "text/plain"}
                if body is None or len(body) != upload.content_length:
                    return 400, b"content length differs from the one announced", {"Content-Type": "text/plain"}
                upload.content = body
            return 200, b"{}", {"Content-Type": "application/json"}
        return 404, b"not found", {"Content-Type": "text/plain"}


def _read_prices(content: bytes) -> dict[int, float]:
    """Id -> SalePrice from a submission CSV; ValueError if it is not one."""
    try:
        rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    except UnicodeDecodeError as exc:
        raise ValueError("Submission is not a UTF-8 CSV file") from exc
    if not rows or not {"Id", "SalePrice"} <= set(rows[0]):
        raise ValueError("Submission must be a CSV with the columns Id and SalePrice")
    try:
        prices = {int(r["Id"]): float(r["SalePrice"]) for r in rows}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Submission has a value that is not a number: {exc}") from exc
    if len(prices) != len(rows):
        raise ValueError("Submission has duplicate Ids")
    return prices


class _Server(ThreadingHTTPServer):
    """A threading server whose connection threads can all be ended and joined."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._connections: dict[threading.Thread, Any] = {}
        self.all_threads: list[threading.Thread] = []
        self._guard = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="kaggle-standin-connection", daemon=True)
        with self._guard:
            self._connections[thread] = request
            self.all_threads.append(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._guard:
                self._connections.pop(threading.current_thread(), None)

    def close_connections(self) -> None:
        with self._guard:
            open_ = list(self._connections.items())
        for thread, sock in open_:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a keep-alive handler waiting for a request wakes up
            except OSError:
                pass
            thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    owner: KaggleStandIn
    protocol_version = "HTTP/1.1"
    server_version = "KaggleStandIn/1"

    def log_message(self, *args: object) -> None:
        pass

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        # Through a proxy the request line holds an absolute URL (http://localhost/api/...).
        parts = urllib.parse.urlsplit(self.path)
        host = parts.netloc or self.headers.get("Host", "")
        return host, parts.path, urllib.parse.parse_qs(parts.query)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _record(self, path: str, host: str, status: int, auth: str | None) -> None:
        with self.owner._lock:
            self.owner.requests.append(RecordedRequest(self.command, path, host, status, auth))

    def _who(self) -> str | None:
        header = self.headers.get("Authorization")
        if not header:
            return None
        try:
            return f"{header.partition(' ')[0].lower()}:{self.owner._auth(header)}"
        except ApiError:
            return "invalid"

    def _handle(self) -> None:
        host, path, query = self._target()
        raw = self._body()
        if path.startswith(STORAGE_PREFIX):
            upload = raw if self.command == "PUT" else None
            status, body, headers = self.owner.storage(self.command, path, query, upload)
            self._record(path, host, status, self._who())
            self._send(status, body, headers)
            return
        if self.command != "POST" or not path.startswith(API_PREFIX):
            self._record(path, host, 404, self._who())
            self._send(404, json.dumps({"code": 404, "message": "Not found"}).encode(),
                       {"Content-Type": "application/json"})
            return
        try:
            request = json.loads(raw or b"{}")
            status, answer = self.owner.api(path[len(API_PREFIX):], request, self.headers.get("Authorization"))
        except ApiError as exc:
            status = exc.status
            if exc.json_body:
                payload = json.dumps({"code": exc.status, "message": exc.message}).encode()
                headers = {"Content-Type": "application/json"}
            else:
                payload = exc.message.encode()
                headers = {"Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="kaggle"'}
            self._record(path, host, status, self._who())
            self._send(status, payload, headers)
            return
        except (ValueError, TypeError) as exc:  # malformed JSON or field types
            self._record(path, host, 400, self._who())
            self._send(400, json.dumps({"code": 400, "message": f"Bad request: {exc}"}).encode(),
                       {"Content-Type": "application/json"})
            return
        self._record(path, host, status, self._who())
        if status == 302:
            self._send(302, b"", {"Location": answer})
        else:
            self._send(status, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    do_GET = do_POST = do_PUT = do_HEAD = _handle


def write_credentials(home: Path, *, token: str | None = None, username: str | None = None,
                      key: str | None = None) -> Path:
    """Write credentials where the client looks for them under a throwaway HOME; return
    ``home/.kaggle`` (use it as ``KAGGLE_CONFIG_DIR``).

    The token must be at ``$HOME/.kaggle/access_token``: kagglesdk reads that fixed path and
    ignores ``KAGGLE_CONFIG_DIR``, which only locates ``kaggle.json``.
    """
    config_dir = home / ".kaggle"
    config_dir.mkdir(parents=True, exist_ok=True)
    if token is not None:
        (config_dir / "access_token").write_text(token + "\n")
        (config_dir / "access_token").chmod(0o600)
    if username is not None and key is not None:
        (config_dir / "kaggle.json").write_text(json.dumps({"username": username, "key": key}))
        (config_dir / "kaggle.json").chmod(0o600)
    return config_dir


def main(argv: list[str] | None = None) -> int:
    """`python tests/kaggle_standin.py [--teams N] -- COMMAND...`: run one command (`bash -c '...'` for
    several) with the real client routed to a stand-in, a token in `KAGGLE_API_TOKEN` (which the
    client reads before any file, so your own credentials are never used), and a leaderboard of
    N other teams; the way the README's Kaggle transcripts were made."""
    import argparse
    import os
    import subprocess

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--teams", type=int, default=40, help="other teams on the leaderboard")
    parser.add_argument("--pending-reads", type=int, default=1, help="reads a submission stays PENDING")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    token, user = "KGAT_standin_" + secrets.token_hex(8), "you"
    # A second session goes on after the refs the project's log already holds, as Kaggle's would.
    log = Path("submissions") / "log.csv"
    with log.open() if log.exists() else io.StringIO("ref\n") as fh:
        refs = [int(row["ref"]) for row in csv.DictReader(fh) if (row.get("ref") or "").isdigit()]
    # The other teams: House Prices scores from 0.1 up, spread like a real leaderboard's head and tail.
    teams = [(f"team-{i:03d}", round(0.1 + 0.3 * (i / args.teams) ** 2, 5)) for i in range(args.teams)]
    with KaggleStandIn(tokens={token: user}, leaderboard=teams, pending_reads=args.pending_reads,
                       first_ref=max(refs, default=40_000_000) + 1) as standin:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
        env.update(KAGGLE_API_TOKEN=token, **standin.client_env())
        return subprocess.run(args.command, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
