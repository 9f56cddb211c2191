"""A fake GitHub on loopback speaking the REST wire format githubkit's typed models accept.

Covers what Fleetwright calls: issues, comments, labels, contents, workflow dispatch, search,
repositories; auth by personal token, GitHub App installation tokens (JWT checked) and the
OAuth device flow with refresh tokens. Inject faults with `inject(status, ...)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fleetwright.testing._fake_server import FakeServer, Reply, Request

__all__ = ["FakeGitHub", "OAuthApp", "deliver_webhook", "sign_webhook"]

_ISO = "%Y-%m-%dT%H:%M:%SZ"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime(_ISO)


def sign_webhook(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver_webhook(
    url: str,
    event: str,
    payload: dict[str, Any],
    *,
    secret: str | None,
    delivery: str | None = None,
    signature: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """POST a webhook the way GitHub does (signed with `secret` unless `signature` is given);
    `verify`: how an https receiver's certificate is checked (its CA)."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign_webhook(body, secret)
    return httpx.post(url, content=body, headers=headers, timeout=10, verify=verify)


@dataclass
class OAuthApp:
    """An OAuth app the fake knows: device-flow polls stay pending `pending_polls` times."""

    client_id: str
    client_secret: str | None = None
    pending_polls: int = 1
    access_ttl: timedelta = timedelta(hours=8)
    refresh_ttl: timedelta = timedelta(days=180)
    device_codes: dict[str, int] = field(default_factory=dict)
    refresh_tokens: dict[str, datetime] = field(default_factory=dict)
    refreshes: int = 0


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    dispatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class FakeGitHub(FakeServer):
    """A loopback GitHub REST API. `url` is the base URL to give githubkit."""

    def __init__(self, *, repos: list[str] | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(host=host)
        self.tokens: dict[str, datetime | None] = {}
        self.oauth_apps: dict[str, OAuthApp] = {}
        self.apps: dict[str, tuple[str, int]] = {}
        self.installation_token_ttl = timedelta(hours=1)
        self.installation_tokens_issued = 0
        self.rate_limit = 5000
        self.rate_remaining = 5000
        self.rate_reset = int(_now().timestamp()) + 3600
        self._repos: dict[str, _Repo] = {}
        self._ids = 1000
        for full in repos or []:
            self.add_repo(full)

    # setup -----------------------------------------------------------------------------
    def _next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    def add_repo(self, full_name: str) -> None:
        owner, name = full_name.split("/", 1)
        with self.lock:
            self._repos[full_name.lower()] = _Repo(owner, name, self._next_id())

    def add_token(self, token: str, *, expires_at: datetime | None = None) -> None:
        """Accept `token` (a personal access token, or an issued one) until `expires_at`."""
        with self.lock:
            self.tokens[token] = expires_at

    def add_app(self, app_id: str, public_key_pem: str, *, installation_id: int) -> None:
        """Register a GitHub App whose JWTs are checked against `public_key_pem`."""
        self.apps[str(app_id)] = (public_key_pem, installation_id)

    def add_oauth_app(self, app: OAuthApp) -> OAuthApp:
        self.oauth_apps[app.client_id] = app
        return app

    def grant_oauth(self, app: OAuthApp) -> dict[str, Any]:
        """Issue an access/refresh pair for `app` as a finished sign-in would (its JSON body)."""
        with self.lock:
            return self._issue_oauth(app)

    def issue(self, full_name: str, number: int) -> dict[str, Any]:
        return self._repos[full_name.lower()].issues[number]

    def file(self, full_name: str, path: str) -> bytes:
        return self._repos[full_name.lower()].files[path][0]

    def dispatches(self, full_name: str) -> list[dict[str, Any]]:
        return list(self._repos[full_name.lower()].dispatches)

    # wire helpers ----------------------------------------------------------------------
    def extra_headers(self, request: Request) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(self.rate_remaining),
            "x-ratelimit-reset": str(self.rate_reset),
            "x-ratelimit-used": str(self.rate_limit - self.rate_remaining),
            "x-ratelimit-resource": "core",
            "x-github-request-id": uuid.uuid4().hex[:16].upper(),
        }

    def _api(self, path: str) -> str:
        return f"{self.url}{path}"

    def _user(self, login: str) -> dict[str, Any]:
        api = self._api(f"/users/{login}")
        return {
            "login": login,
            "id": abs(hash(login)) % 10_000_000,
            "node_id": f"U_{login}",
            "avatar_url": f"{self.url}/avatars/{login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.url}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "User",
            "site_admin": False,
        }

    def _label(self, repo: _Repo, name: str) -> dict[str, Any]:
        return {
            "id": abs(hash((repo.full_name, name))) % 10_000_000,
            "node_id": f"LA_{name}",
            "url": self._api(f"/repos/{repo.full_name}/labels/{name}"),
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
            "archived_at": None,
            "archived_by": None,
        }

    def _repo_body(self, repo: _Repo) -> dict[str, Any]:
        api = self._api(f"/repos/{repo.full_name}")
        stamp = "2026-01-01T00:00:00Z"
        urls = {
            f"{n}_url": f"{api}/{n}"
            for n in (
                "archive",
                "assignees",
                "blobs",
                "branches",
                "collaborators",
                "comments",
                "commits",
                "compare",
                "contents",
                "contributors",
                "deployments",
                "downloads",
                "events",
                "forks",
                "git_commits",
                "git_refs",
                "git_tags",
                "hooks",
                "issue_comment",
                "issue_events",
                "issues",
                "keys",
                "labels",
                "languages",
                "merges",
                "milestones",
                "notifications",
                "pulls",
                "releases",
                "stargazers",
                "statuses",
                "subscribers",
                "subscription",
                "tags",
                "teams",
                "trees",
            )
        }
        return {
            **urls,
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user(repo.owner),
            "private": False,
            "html_url": f"{self.url}/{repo.full_name}",
            "description": f"{repo.name} (fake)",
            "fork": False,
            "url": api,
            "git_url": f"git://fake/{repo.full_name}.git",
            "ssh_url": f"git@fake:{repo.full_name}.git",
            "clone_url": f"{self.url}/{repo.full_name}.git",
            "svn_url": f"{self.url}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "subscribers_count": 0,
            "network_count": 0,
            "size": 1,
            "default_branch": "main",
            "open_issues": sum(1 for i in repo.issues.values() if i["state"] == "open"),
            "open_issues_count": sum(1 for i in repo.issues.values() if i["state"] == "open"),
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "pushed_at": stamp,
            "created_at": stamp,
            "updated_at": stamp,
            "visibility": "public",
        }

    def _new_issue(self, repo: _Repo, data: dict[str, Any], user: str) -> dict[str, Any]:
        number = len(repo.issues) + 1
        api = self._api(f"/repos/{repo.full_name}/issues/{number}")
        stamp = _iso(_now())
        issue = {
            "id": self._next_id(),
            "node_id": f"I_{repo.id}_{number}",
            "url": api,
            "repository_url": self._api(f"/repos/{repo.full_name}"),
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{self.url}/{repo.full_name}/issues/{number}",
            "number": number,
            "state": "open",
            "state_reason": None,
            "title": data["title"],
            "body": data.get("body"),
            "user": self._user(user),
            "labels": [self._label(repo, n) for n in data.get("labels") or []],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": 0,
            "closed_at": None,
            "created_at": stamp,
            "updated_at": stamp,
            "author_association": "OWNER",
            "reactions": {
                "url": f"{api}/reactions",
                "total_count": 0,
                "+1": 0,
                "-1": 0,
                "laugh": 0,
                "hooray": 0,
                "confused": 0,
                "heart": 0,
                "rocket": 0,
                "eyes": 0,
            },
        }
        repo.issues[number] = issue
        return issue

    @staticmethod
    def _error(status: int, message: str) -> Reply:
        return Reply(
            status,
            {
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": str(status),
            },
        )

    # auth ------------------------------------------------------------------------------
    def _auth_user(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not value:
            return None
        with self.lock:
            if value not in self.tokens:
                return None
            expires = self.tokens[value]
        if expires is not None and _now() >= expires:
            return None
        return "fleetwright-bot"

    def _app_from_jwt(self, request: Request) -> str | None:
        import jwt

        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        token = header.split(" ", 1)[1]
        try:
            issuer = str(jwt.decode(token, options={"verify_signature": False})["iss"])
            key, _ = self.apps[issuer]
            jwt.decode(token, key, algorithms=["RS256"])
        except Exception:
            return None
        return issuer

    # routes ----------------------------------------------------------------------------
    def route(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if path == "/login/device/code" and method == "POST":
            return self._device_code(request)
        if path == "/login/oauth/access_token" and method == "POST":
            return self._access_token(request)
        m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if m and method == "POST":
            return self._installation_token(request, int(m[1]))
        user = self._auth_user(request)
        if user is None:
            return self._error(401, "Bad credentials")
        if path == "/search/issues" and method == "GET":
            return self._search(request)
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not m:
            return self._error(404, "Not Found")
        repo = self._repos.get(f"{m[1]}/{m[2]}".lower())
        if repo is None:
            return self._error(404, "Not Found")
        return self._repo_route(request, repo, m[3] or "", user)

    def _repo_route(self, request: Request, repo: _Repo, rest: str, user: str) -> Reply:
        method = request.method
        if rest == "" and method == "GET":
            return Reply(200, self._repo_body(repo))
        if rest == "/issues" and method == "POST":
            data = request.json()
            if not data.get("title"):
                return Reply(
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {"resource": "Issue", "code": "missing_field", "field": "title"}
                        ],
                        "documentation_url": "https://docs.github.com/rest",
                    },
                )
            return Reply(201, self._new_issue(repo, data, user))
        m = re.fullmatch(r"/issues/(\d+)(/comments|/labels)?", rest)
        if m:
            issue = repo.issues.get(int(m[1]))
            if issue is None:
                return self._error(404, "Not Found")
            return self._issue_route(request, repo, issue, m[2] or "", user)
        m = re.fullmatch(r"/contents/(.+)", rest)
        if m:
            return self._contents(request, repo, m[1], user)
        m = re.fullmatch(r"/actions/workflows/([^/]+)/dispatches", rest)
        if m and method == "POST":
            data = request.json()
            repo.dispatches.append({"workflow": m[1], **data})
            run_id = self._next_id()
            api = self._api(f"/repos/{repo.full_name}/actions/runs/{run_id}")
            return Reply(
                200,
                {
                    "workflow_run_id": run_id,
                    "run_url": api,
                    "html_url": f"{self.url}/{repo.full_name}/actions/runs/{run_id}",
                },
            )
        return self._error(404, "Not Found")

    def _issue_route(
        self, request: Request, repo: _Repo, issue: dict[str, Any], rest: str, user: str
    ) -> Reply:
        method = request.method
        if rest == "" and method == "PATCH":
            data = request.json()
            for key in ("title", "body", "state", "state_reason"):
                if key in data:
                    issue[key] = data[key]
            if data.get("state") == "closed":
                issue["closed_at"] = _iso(_now())
                issue["state_reason"] = data.get("state_reason") or "completed"
            issue["updated_at"] = _iso(_now())
            return Reply(200, issue)
        if rest == "" and method == "GET":
            return Reply(200, issue)
        if rest == "/labels" and method == "POST":
            names = request.json().get("labels") or []
            have = [label["name"] for label in issue["labels"]]
            issue["labels"] += [self._label(repo, n) for n in names if n not in have]
            return Reply(200, issue["labels"])
        if rest == "/comments" and method == "POST":
            issue["comments"] += 1
            cid = self._next_id()
            stamp = _iso(_now())
            api = self._api(f"/repos/{repo.full_name}/issues/comments/{cid}")
            return Reply(
                201,
                {
                    "id": cid,
                    "node_id": f"IC_{cid}",
                    "url": api,
                    "html_url": f"{issue['html_url']}#issuecomment-{cid}",
                    "issue_url": issue["url"],
                    "body": request.json().get("body"),
                    "user": self._user(user),
                    "created_at": stamp,
                    "updated_at": stamp,
                    "author_association": "OWNER",
                },
            )
        return self._error(404, "Not Found")

    def _contents(self, request: Request, repo: _Repo, path: str, user: str) -> Reply:
        api = self._api(f"/repos/{repo.full_name}/contents/{path}")
        html = f"{self.url}/{repo.full_name}/blob/main/{path}"
        if request.method == "GET":
            if path not in repo.files:
                return self._error(404, "Not Found")
            content, sha = repo.files[path]
            git = self._api(f"/repos/{repo.full_name}/git/blobs/{sha}")
            return Reply(
                200,
                {
                    "type": "file",
                    "encoding": "base64",
                    "size": len(content),
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "content": base64.b64encode(content).decode(),
                    "sha": sha,
                    "url": api,
                    "git_url": git,
                    "html_url": html,
                    "download_url": f"{self.url}/raw/{path}",
                    "_links": {"self": api, "git": git, "html": html},
                },
            )
        if request.method != "PUT":
            return self._error(404, "Not Found")
        data = request.json()
        existing = repo.files.get(path)
        if existing is not None and data.get("sha") != existing[1]:
            return Reply(
                409 if data.get("sha") else 422,
                {
                    "message": f'"sha" wasn\'t supplied or does not match {path}',
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "409",
                },
            )
        content = base64.b64decode(data["content"])
        sha = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        repo.files[path] = (content, sha)
        commit_sha = secrets.token_hex(20)
        git = self._api(f"/repos/{repo.full_name}/git/blobs/{sha}")
        person = {"name": user, "email": f"{user}@users.noreply.fake", "date": _iso(_now())}
        body = {
            "content": {
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "sha": sha,
                "size": len(content),
                "url": api,
                "html_url": html,
                "git_url": git,
                "download_url": f"{self.url}/raw/{path}",
                "type": "file",
                "_links": {"self": api, "git": git, "html": html},
            },
            "commit": {
                "sha": commit_sha,
                "node_id": f"C_{commit_sha[:8]}",
                "url": self._api(f"/repos/{repo.full_name}/git/commits/{commit_sha}"),
                "html_url": f"{self.url}/{repo.full_name}/commit/{commit_sha}",
                "author": person,
                "committer": person,
                "message": data.get("message", ""),
                "tree": {"url": self._api(f"/repos/{repo.full_name}/git/trees/{sha}"), "sha": sha},
                "parents": [],
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
        }
        return Reply(200 if existing else 201, body)

    def _search(self, request: Request) -> Reply:
        q = (request.query.get("q") or [""])[0]
        repo_name = None
        words = []
        for part in q.split():
            if part.startswith("repo:"):
                repo_name = part[5:].lower()
            elif ":" not in part:
                words.append(part.lower())
        items = []
        for key, repo in self._repos.items():
            if repo_name and key != repo_name:
                continue
            for issue in repo.issues.values():
                text = f"{issue['title']} {issue.get('body') or ''}".lower()
                if all(w in text for w in words):
                    items.append({**issue, "score": 1.0})
        return Reply(
            200,
            {
                "total_count": len(items),
                "incomplete_results": False,
                "items": items,
                "search_type": "lexical",
            },
        )

    def _device_code(self, request: Request) -> Reply:
        data = request.json()
        app = self.oauth_apps.get(data.get("client_id", ""))
        if app is None:
            return Reply(
                200,
                {
                    "error": "incorrect_client_credentials",
                    "error_description": "The client_id is not valid.",
                },
            )
        code = secrets.token_hex(20)
        app.device_codes[code] = app.pending_polls
        return Reply(
            200,
            {
                "device_code": code,
                "user_code": "WDJB-MJHT",
                "verification_uri": f"{self.url}/login/device",
                "expires_in": 900,
                "interval": 1,
            },
        )

    def _issue_oauth(self, app: OAuthApp) -> dict[str, Any]:
        access = "ghu_" + secrets.token_hex(18)
        refresh = "ghr_" + secrets.token_hex(36)
        self.add_token(access, expires_at=_now() + app.access_ttl)
        app.refresh_tokens[refresh] = _now() + app.refresh_ttl
        return {
            "access_token": access,
            "expires_in": int(app.access_ttl.total_seconds()),
            "refresh_token": refresh,
            "refresh_token_expires_in": int(app.refresh_ttl.total_seconds()),
            "scope": "",
            "token_type": "bearer",
        }

    def _access_token(self, request: Request) -> Reply:
        data = request.json()
        app = self.oauth_apps.get(data.get("client_id", ""))
        if app is None:
            return Reply(
                200,
                {
                    "error": "incorrect_client_credentials",
                    "error_description": "The client_id and/or client_secret passed are incorrect.",
                },
            )
        grant = data.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            left = app.device_codes.get(data.get("device_code", ""))
            if left is None:
                return Reply(
                    200,
                    {
                        "error": "incorrect_device_code",
                        "error_description": "The device_code provided is not valid.",
                    },
                )
            if left > 0:
                app.device_codes[data["device_code"]] = left - 1
                return Reply(
                    200,
                    {
                        "error": "authorization_pending",
                        "error_description": "The authorization request is still pending.",
                        "error_uri": "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
                    },
                )
            del app.device_codes[data["device_code"]]
            return Reply(200, self._issue_oauth(app))
        if grant == "refresh_token":
            expires = app.refresh_tokens.pop(data.get("refresh_token", ""), None)
            if expires is None or expires < _now():
                return Reply(
                    200,
                    {
                        "error": "bad_refresh_token",
                        "error_description": "The refresh token passed is incorrect or expired.",
                    },
                )
            app.refreshes += 1
            return Reply(200, self._issue_oauth(app))
        return Reply(200, {"error": "unsupported_grant_type", "error_description": str(grant)})

    def _installation_token(self, request: Request, installation_id: int) -> Reply:
        issuer = self._app_from_jwt(request)
        if issuer is None:
            return self._error(401, "A JSON web token could not be decoded")
        if self.apps[issuer][1] != installation_id:
            return self._error(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires = _now() + self.installation_token_ttl
        self.add_token(token, expires_at=expires)
        with self.lock:
            self.installation_tokens_issued += 1
        return Reply(
            201,
            {
                "token": token,
                "expires_at": _iso(expires),
                "permissions": {"issues": "write", "contents": "write"},
                "repository_selection": "all",
            },
        )
