"""The Sora web backend over httpx, on aiohttp's transport: one place for hosts, headers, timeouts, errors.

Every non-2xx answer and every transport failure is raised as a typed
``UpstreamError`` from ``shared.sora.errors``; callers react by its class.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from shared import metrics
from shared.settings import Settings
from shared.sora import errors
from shared.sora.sentinel import SentinelProvider, build_provider
from shared.sora.transport import AiohttpTransport

# The Sora Android app's agent: what the upstream has accepted best since the 2026 sentinel wave.
USER_AGENT = "Sora/1.2026.007 (Android 15; 24122RKC7C; build 2600700)"
SESSION_COOKIE = "__Secure-next-auth.session-token"


class Credentials(msgspec.Struct, frozen=True):
    account_id: int
    access_token: str
    session_token: str | None = None
    proxy_url: str | None = None


class MediaNotAllowed(Exception):
    """A media URL points at a host we do not download from."""


class SoraClient:
    def __init__(self, settings: Settings, *, sentinel: SentinelProvider | None = None) -> None:
        self._settings = settings
        self._backend = settings.sora_backend_url.rstrip("/")
        self._clients: dict[str | None, httpx.AsyncClient] = {}
        self.sentinel = sentinel or build_provider(settings.sentinel_provider, self._client(None))
        self._drafts_path = "/project_y/profile/drafts/v2"

    def _client(self, proxy_url: str | None) -> httpx.AsyncClient:
        client = self._clients.get(proxy_url)
        if client is None:
            client = httpx.AsyncClient(
                transport=AiohttpTransport(proxy=proxy_url, max_connections=200),
                timeout=httpx.Timeout(self._settings.upstream_timeout_s, connect=15.0),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json, text/plain, */*"},
                follow_redirects=False,
            )
            self._clients[proxy_url] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def _call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        request_headers = {"Authorization": f"Bearer {creds.access_token}", **(headers or {})}
        return await self._exchange(
            self._client(creds.proxy_url),
            method,
            self._backend + path,
            json=json,
            params=params,
            headers=request_headers,
            timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
        )

    async def _exchange(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
        """One request: typed errors for failures, the decoded JSON (or None when empty) for successes."""
        route = self.route_of(url)
        started = time.perf_counter()
        status: int | None = None
        try:
            try:
                response = await client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                raise errors.classify_transport(exc) from exc
            status = response.status_code
            if response.status_code >= 400:
                raise errors.classify(response.status_code, response.headers, response.content)
            if not response.content:
                answer = None
            else:
                try:
                    answer = msgspec.json.decode(response.content)
                except msgspec.DecodeError:
                    # A 2xx that is not JSON is a proxy or challenge page: treat it as a bad gateway.
                    raise errors.classify(502, response.headers, response.content) from None
        except errors.UpstreamError as exc:
            _observe(route, status, exc.error_class, started)
            raise
        _observe(route, status, "ok", started)
        return answer

    def route_of(self, url: str) -> str:
        """The metrics label of a URL we call: its route template, never an id or a query string."""
        path = urlsplit(url).path
        bases = (
            (self._backend, ""),
            (self._settings.sora_web_url.rstrip("/"), ""),
            (self._settings.openai_auth_url.rstrip("/"), ""),
            (self._settings.watermark_parser_url.rstrip("/"), "parser:"),
        )
        for base, label in bases:
            if base and url.startswith(base + "/"):
                return label + route_template(url[len(base) :].split("?", 1)[0])
        return "other:" + route_template(path)

    # Account information -------------------------------------------------------

    async def me(self, creds: Credentials) -> dict[str, Any]:
        return await self._call(creds, "GET", "/me") or {}

    async def subscriptions(self, creds: Credentials) -> dict[str, Any]:
        return await self._call(creds, "GET", "/billing/subscriptions") or {}

    async def nf_check(self, creds: Credentials) -> dict[str, Any]:
        return await self._call(creds, "GET", "/nf/check") or {}

    # Token exchange (the session and OAuth hosts are settings of their own) ---------

    async def session_access_token(self, session_token: str, proxy_url: str | None) -> dict[str, Any]:
        """ST → AT: ``{accessToken, user: {email}, expires}``. No new ST comes back."""
        url = self._settings.sora_web_url.rstrip("/") + "/api/auth/session"
        return (
            await self._exchange(
                self._client(proxy_url),
                "GET",
                url,
                headers={
                    "Cookie": f"__Secure-next-auth.session-token={session_token}",
                    "Accept": "application/json",
                },
            )
            or {}
        )

    async def oauth_refresh(
        self, refresh_token: str, client_id: str, redirect_uri: str, proxy_url: str | None
    ) -> dict[str, Any]:
        """RT → AT: ``{access_token, refresh_token?, expires_in}``; a returned RT replaces the old one."""
        url = self._settings.openai_auth_url.rstrip("/") + "/oauth/token"
        body = {
            "client_id": client_id,
            "grant_type": "refresh_token",
            "redirect_uri": redirect_uri,
            "refresh_token": refresh_token,
        }
        return await self._exchange(self._client(proxy_url), "POST", url, json=body) or {}

    # Video tasks ---------------------------------------------------------------

    async def create_video(self, creds: Credentials, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._gated_create(creds, "/nf/create", payload)

    async def create_storyboard(self, creds: Credentials, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._gated_create(creds, "/nf/create/storyboard", payload)

    async def extend(self, creds: Credentials, generation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        path = f"/project_y/profile/drafts/{generation_id}/long_video_extension"
        return await self._gated_create(creds, path, payload)

    async def create_image(self, creds: Credentials, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._gated_create(creds, "/video_gen", payload)

    async def publish(self, creds: Credentials, generation_id: str) -> str:
        """Publishes a draft as a post and returns its ``s_…`` id."""
        payload = {
            "attachments_to_create": [{"generation_id": generation_id, "kind": "sora"}],
            "post_text": "",
        }
        answer = await self._gated(creds, "/project_y/post", payload)
        post = answer.get("post") if isinstance(answer, dict) else None
        if not isinstance(post, dict) or not isinstance(post.get("id"), str):
            raise errors.classify(502, {}, b"publish answered without a post id")
        return post["id"]

    async def post_source_url(self, creds: Credentials, post_id: str) -> str | None:
        """The unwatermarked file of a post, from its detail (given only to some accounts)."""
        answer = await self._call(creds, "GET", f"/project_y/post/{post_id}") or {}
        attachments = answer.get("attachments") or (answer.get("post") or {}).get("attachments") or []
        for attachment in attachments:
            path = ((attachment or {}).get("encodings") or {}).get("source", {}).get("path")
            if isinstance(path, str) and path:
                return path
        return None

    async def parse_clean_link(self, parser_url: str, post_id: str, access_token: str) -> str | None:
        """Asks the operator's parser service for a post's clean download link."""
        answer = await self._exchange(
            self._client(None),
            "POST",
            parser_url.rstrip("/") + "/get-sora-link",
            json={"url": f"https://sora.chatgpt.com/p/{post_id}", "token": access_token},
            timeout=60.0,
        )
        link = answer.get("download_link") if isinstance(answer, dict) else None
        return link if isinstance(link, str) and link else None

    async def delete_post(self, creds: Credentials, post_id: str) -> None:
        await self._call(creds, "DELETE", f"/project_y/post/{post_id}")

    async def upload_image(self, creds: Credentials, data: bytes, content_type: str, extension: str) -> str:
        """Uploads an input image; returns the media id that ``inpaint_items`` refer to."""
        name = f"image.{extension}"
        answer = await self._exchange(
            self._client(creds.proxy_url),
            "POST",
            self._backend + "/uploads",
            headers={"Authorization": f"Bearer {creds.access_token}"},
            files={"file": (name, data, content_type)},
            data={"file_name": name},
        )
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str):
            raise errors.classify(502, {}, b"upload answered without a media id")
        return media_id

    async def _gated_create(self, creds: Credentials, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await self._gated(creds, path, payload)
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise errors.classify(502, {}, b"create answered without a task id")
        return answer

    async def _gated(self, creds: Credentials, path: str, payload: dict[str, Any]) -> Any:
        """A sentinel-gated call; a sentinel rejection refreshes the value and tries once more."""
        try:
            return await self._gated_once(creds, path, payload)
        except errors.SentinelBlock:
            await self.sentinel.invalidate(creds.access_token)
            return await self._gated_once(creds, path, payload)

    async def _gated_once(self, creds: Credentials, path: str, payload: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "oai-language": "en-US"}
        sentinel = await self.sentinel.get(creds.access_token, creds.proxy_url)
        if sentinel is not None:
            headers["openai-sentinel-token"] = sentinel.sentinel_token
            headers["oai-device-id"] = sentinel.device_id
            if sentinel.user_agent:
                headers["User-Agent"] = sentinel.user_agent
        cookie = sentinel.cookie_header if sentinel is not None else None
        if cookie is None and creds.session_token:
            cookie = f"{SESSION_COOKIE}={creds.session_token}"
        if cookie:
            headers["Cookie"] = cookie
        return await self._call(
            creds, "POST", path, json=payload, headers=headers, timeout_s=self._settings.create_timeout_s
        )

    async def pending(self, creds: Credentials) -> list[dict[str, Any]]:
        answer = await self._call(creds, "GET", "/nf/pending/v2")
        return [item for item in answer or [] if isinstance(item, dict)]

    async def recent_image_tasks(self, creds: Credentials, *, limit: int = 20) -> list[dict[str, Any]]:
        answer = await self._call(creds, "GET", "/v2/recent_tasks", params={"limit": limit})
        tasks = answer.get("task_responses") if isinstance(answer, dict) else None
        return [task for task in tasks or [] if isinstance(task, dict)]

    async def drafts(
        self, creds: Credentials, *, limit: int = 15, cursor: str | None = None
    ) -> dict[str, Any]:
        """The newest drafts first; tries the page's current route, then the older one."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        try:
            answer = await self._call(creds, "GET", self._drafts_path, params=params)
        except errors.NotFoundUpstream:
            if self._drafts_path.endswith("/v2"):
                self._drafts_path = "/project_y/profile/drafts"
                return await self.drafts(creds, limit=limit, cursor=cursor)
            raise
        return answer if isinstance(answer, dict) else {"items": [], "cursor": None}

    # Public reads (the sora2api query routes) ------------------------------------

    async def feed(
        self, creds: Credentials, *, cut: str, limit: int, cursor: str | None = None
    ) -> dict[str, Any]:
        """The public feed: ``{items: [{post, profile}], cursor}``."""
        params = _page(limit, cursor, cut=cut)
        return _object(await self._call(creds, "GET", "/project_y/feed", params=params))

    async def profile_feed(
        self, creds: Credentials, user_id: str, *, limit: int, cursor: str | None = None
    ) -> dict[str, Any]:
        """One user's posts; ``user_id`` ``me`` means the account's own."""
        path = f"/project_y/profile_feed/{quote(user_id, safe='')}"
        return _object(await self._call(creds, "GET", path, params=_page(limit, cursor, cut="nf2")))

    async def profile_by_username(self, creds: Credentials, username: str) -> dict[str, Any]:
        path = f"/project_y/profile/username/{quote(username, safe='')}"
        return _object(await self._call(creds, "GET", path))

    async def search_mentions(
        self, creds: Credentials, username: str, *, intent: str, limit: int
    ) -> dict[str, Any]:
        """Users (``intent=users``) or usable characters (``cameo``): ``{items: [{profile, token}]}``."""
        params = {"username": username, "intent": intent, "limit": limit}
        return _object(await self._call(creds, "GET", "/project_y/profile/search_mentions", params=params))

    async def invite_mine(self, creds: Credentials) -> dict[str, Any]:
        """The account's invite code; a 401 there means Sora 2 is not activated: bootstrap once, ask again."""
        try:
            return _object(await self._call(creds, "GET", "/project_y/invite/mine"))
        except errors.UpstreamError as exc:
            if exc.status != 401:
                raise
        await self._call(creds, "GET", "/m/bootstrap")
        return _object(await self._call(creds, "GET", "/project_y/invite/mine"))

    # Characters (cameos) ---------------------------------------------------------

    async def _multipart(
        self, creds: Credentials, path: str, files: dict[str, Any], data: dict[str, str]
    ) -> dict[str, Any]:
        answer = await self._exchange(
            self._client(creds.proxy_url),
            "POST",
            self._backend + path,
            headers={"Authorization": f"Bearer {creds.access_token}"},
            files=files,
            data=data,
        )
        return answer if isinstance(answer, dict) else {}

    @staticmethod
    def _cameo_id(answer: Any) -> str:
        cameo_id = (answer.get("id") or answer.get("cameo_id")) if isinstance(answer, dict) else None
        if not isinstance(cameo_id, str) or not cameo_id:
            raise errors.classify(502, {}, b"character start answered without a cameo id")
        return cameo_id

    async def upload_character_video(self, creds: Credentials, data: bytes, timestamps: str) -> str:
        """Starts a cameo from an MP4 (``timestamps`` like ``"0,3"``); returns the cameo id."""
        answer = await self._multipart(
            creds,
            "/characters/upload",
            files={"file": ("video.mp4", data, "video/mp4")},
            data={"timestamps": timestamps},
        )
        return self._cameo_id(answer)

    async def character_from_generation(
        self, creds: Credentials, generation_id: str, timestamps: list[int | float]
    ) -> str:
        """Starts a cameo from one of the account's drafts; returns the cameo id."""
        body = {"generation_id": generation_id, "character_id": None, "timestamps": timestamps}
        return self._cameo_id(await self._call(creds, "POST", "/characters/from-generation", json=body))

    async def cameo_status(self, creds: Credentials, cameo_id: str) -> dict[str, Any]:
        """``status``, ``status_message`` and, once done, the hints and ``profile_asset_url``."""
        answer = await self._call(creds, "GET", f"/project_y/cameos/in_progress/{cameo_id}")
        return answer if isinstance(answer, dict) else {}

    async def upload_profile_asset(
        self, creds: Credentials, data: bytes, content_type: str, file_name: str
    ) -> str:
        """Uploads a picture for a profile (a character's avatar); returns its ``sediment://`` pointer."""
        answer = await self._multipart(
            creds,
            "/project_y/file/upload",
            files={"file": (file_name, data, content_type)},
            data={"use_case": "profile"},
        )
        pointer = answer.get("asset_pointer")
        if not isinstance(pointer, str) or not pointer:
            raise errors.classify(502, {}, b"file upload answered without an asset pointer")
        return pointer

    async def username_available(self, creds: Credentials, username: str) -> bool:
        answer = await self._call(
            creds, "POST", "/project_y/profile/username/check", json={"username": username}
        )
        return bool(answer.get("available")) if isinstance(answer, dict) else False

    async def finalize_character(self, creds: Credentials, payload: dict[str, Any]) -> str:
        """Turns a processed cameo into a character; returns its ``character_id``."""
        answer = await self._call(creds, "POST", "/characters/finalize", json=payload)
        character = answer.get("character") if isinstance(answer, dict) else None
        character_id = character.get("character_id") if isinstance(character, dict) else None
        if not isinstance(character_id, str) or not character_id:
            raise errors.classify(502, {}, b"finalize answered without a character id")
        return character_id

    async def set_cameo_public(self, creds: Credentials, cameo_id: str) -> None:
        await self._call(
            creds, "POST", f"/project_y/cameos/by_id/{cameo_id}/update_v2", json={"visibility": "public"}
        )

    # Media ---------------------------------------------------------------------

    def check_media_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise MediaNotAllowed(f"not a media URL: {url[:80]!r}")
        if not any(host == allowed or host.endswith("." + allowed) for allowed in self._settings.media_hosts):
            raise MediaNotAllowed(f"media host {host!r} is not in MEDIA_ALLOWED_HOSTS")

    @asynccontextmanager
    async def media(self, url: str, *, max_bytes: int) -> AsyncIterator[AsyncIterator[bytes]]:
        """Streams a signed media URL exactly as given, without our Authorization header."""
        self.check_media_url(url)
        started = time.perf_counter()
        try:
            async with self._client(None).stream(
                "GET", url, timeout=httpx.Timeout(120.0, connect=15.0)
            ) as resp:
                if resp.status_code >= 400:
                    error = errors.classify(resp.status_code, resp.headers, await resp.aread())
                    _observe("media", resp.status_code, error.error_class, started)
                    raise error
                # Until the answer starts: the download itself takes as long as the file is big.
                _observe("media", resp.status_code, "ok", started)

                async def chunks() -> AsyncIterator[bytes]:
                    seen = 0
                    async for chunk in resp.aiter_bytes(256 * 1024):
                        seen += len(chunk)
                        if seen > max_bytes:
                            raise errors.classify(502, {}, b"media larger than the download limit")
                        yield chunk

                yield chunks()
        except httpx.TransportError as exc:
            error = errors.classify_transport(exc)
            _observe("media", None, error.error_class, started)
            raise error from exc


# Backend paths that carry an id, as templates (the rest are fixed paths and are their own template).
_DYNAMIC_ROUTES = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (
            r"^/project_y/profile/drafts/[^/]+/long_video_extension$",
            "/project_y/profile/drafts/{id}/long_video_extension",
        ),
        (r"^/project_y/post/[^/]+$", "/project_y/post/{id}"),
        (r"^/project_y/profile_feed/[^/]+$", "/project_y/profile_feed/{id}"),
        (r"^/project_y/profile/username/(?!check$)[^/]+$", "/project_y/profile/username/{username}"),
        (r"^/project_y/cameos/in_progress/[^/]+$", "/project_y/cameos/in_progress/{id}"),
        (r"^/project_y/cameos/by_id/[^/]+/update_v2$", "/project_y/cameos/by_id/{id}/update_v2"),
    )
)
# A path segment that looks like an id (has a digit and is long, or has an id prefix) in a path not above.
_ID_SEGMENT = re.compile(r"^(?=.*\d)[\w.~-]{12,}$|^(?:s|gen|task|cameo|ch|user|file|acct)[_-][\w-]+$")


def route_template(path: str) -> str:
    for pattern, template in _DYNAMIC_ROUTES:
        if pattern.match(path):
            return template
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def _observe(route: str, status: int | None, outcome: str, started: float) -> None:
    metrics.UPSTREAM_REQUESTS.labels(route, metrics.status_class(status), outcome).inc()
    metrics.UPSTREAM_DURATION.labels(route).observe(time.perf_counter() - started)


def _page(limit: int, cursor: str | None, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = {"limit": limit, **params}
    if cursor:
        page["cursor"] = cursor
    return page


def _object(answer: Any) -> dict[str, Any]:
    """A read's JSON object; an empty 2xx is an empty object, any other shape a bad answer."""
    if answer is None:
        return {}
    if not isinstance(answer, dict):
        raise errors.UnexpectedResponse(f"expected a JSON object, got {type(answer).__name__}", status=200)
    return answer
