"""What ``/schema`` documents beyond what Litestar infers from the handlers.

* Every refusal has the OpenAI error body (``api.errors``), not Litestar's own validation body.
* The keys: client routes take a client key, ``/api/…`` the admin key, both as ``Authorization: Bearer``.
* The create routes read JSON or multipart themselves (``api.video_requests.read_fields``), so their
  request bodies are described here; the media downloads answer bytes, not JSON.

This keeps the schema accurate enough for clients and for the schema-driven fuzz run in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)

STRING = Schema(type=OpenAPIType.STRING)
NULLABLE_STRING = Schema(type=[OpenAPIType.STRING, OpenAPIType.NULL])
BOOLEAN = Schema(type=OpenAPIType.BOOLEAN)
INTEGER = Schema(type=OpenAPIType.INTEGER)
OBJECT = Schema(type=OpenAPIType.OBJECT)
BINARY = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
STRING_OR_INTEGER = Schema(one_of=[STRING, INTEGER])
# Blank prompts are refused (400 missing_required_parameter); the length limit is PROMPT_MAX_CHARS.
PROMPT = Schema(type=OpenAPIType.STRING, min_length=1, examples=["a red fox running through fresh snow"])
VIDEO_MODEL = Schema(
    type=OpenAPIType.STRING,
    description="A model id (GET /v1/models); ids are parsed, so every naming in use works",
    examples=["sora-2", "sora-2-pro", "sora-video-landscape-15s"],
)
IMAGE_MODEL = Schema(type=OpenAPIType.STRING, examples=["sora-image", "sora-image-landscape"])

ERROR = Schema(
    type=OpenAPIType.OBJECT,
    required=["error"],
    properties={
        "error": Schema(
            type=OpenAPIType.OBJECT,
            required=["message", "type", "param", "code"],
            properties={"message": STRING, "type": STRING, "param": NULLABLE_STRING, "code": NULLABLE_STRING},
        )
    },
    description="The OpenAI error body; `code` is a string or null, never a number.",
)
REFUSED = OpenAPIResponse(
    description=(
        "Refused: bad input (400), a missing or wrong key (401), the wrong key for the route (403), an "
        "unknown id (404), a state conflict (409), a body too large (413), rate limited (429, retry-after)"
    ),
    content={"application/json": OpenAPIMediaType(schema=ERROR)},
)

CLIENT_KEY = "clientKey"
ADMIN_KEY = "adminKey"
COMPONENTS = Components(
    security_schemes={
        CLIENT_KEY: SecurityScheme(
            type="http",
            scheme="bearer",
            description="A client key: API_KEYS, or one made with POST /api/keys",
        ),
        ADMIN_KEY: SecurityScheme(type="http", scheme="bearer", description="ADMIN_KEY"),
    }
)


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=required)


def _body(json: Schema, form: Schema | None = None) -> RequestBody:
    content = {"application/json": OpenAPIMediaType(schema=json)}
    if form is not None:
        content["multipart/form-data"] = OpenAPIMediaType(schema=form)
    return RequestBody(content=content, required=True)


_IMAGE_SOURCE = Schema(
    one_of=[STRING, _object({"image_url": STRING})],
    description="base64, a data URL or an http(s) URL; or {image_url}",
)
_CHARACTER_FIELDS = {
    "character_url": STRING,
    "character_timestamps": STRING,
    "character_from_task": STRING,
    "character_create": BOOLEAN,
    "character_options": OBJECT,
}
_VIDEO_FIELDS = {
    "prompt": PROMPT,
    "model": VIDEO_MODEL,
    "seconds": Schema(one_of=[STRING, INTEGER], examples=["10", 15]),
    "duration": STRING_OR_INTEGER,
    "size": Schema(type=OpenAPIType.STRING, examples=["720x1280", "1280x720"]),
    "orientation": Schema(type=OpenAPIType.STRING, enum=["landscape", "portrait"]),
    "style_id": STRING,
    "style": STRING,
    "remix_target_id": STRING,
    "input_reference": _IMAGE_SOURCE,
    "input_image": STRING,
    "image": STRING,
    "images": Schema(type=OpenAPIType.ARRAY, items=STRING),
    "watermark": BOOLEAN,
    "async_mode": BOOLEAN,
    "metadata": OBJECT,
    **_CHARACTER_FIELDS,
}
_VIDEO_FORM = {
    "prompt": PROMPT,
    "model": VIDEO_MODEL,
    "seconds": STRING,
    "size": STRING,
    "style_id": STRING,
    "input_reference": BINARY,
}
_VIDEO = _body(_object(_VIDEO_FIELDS, ["prompt"]), _object(_VIDEO_FORM, ["prompt"]))
_IMAGE_FIELDS = {
    "prompt": PROMPT,
    "model": IMAGE_MODEL,
    "n": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=4),
    "size": STRING,
    "response_format": Schema(type=OpenAPIType.STRING, enum=["url", "b64_json"]),
}
_CHARACTER_FIELDS_OWN = {
    "video": STRING,
    "video_base64": STRING,
    "url": STRING,
    "from_task": STRING,
    "timestamps": STRING,
    "username": STRING,
    "display_name": STRING,
    "instruction_set": STRING,
    "safety_instruction_set": STRING,
    "model": STRING,
    "async_mode": BOOLEAN,
}
_PART = Schema(
    one_of=[
        _object({"type": Schema(const="text"), "text": PROMPT}, ["type", "text"]),
        _object(
            {"type": Schema(const="image_url"), "image_url": _object({"url": STRING})}, ["type", "image_url"]
        ),
        _object(
            {"type": Schema(const="video_url"), "video_url": _object({"url": STRING})}, ["type", "video_url"]
        ),
    ]
)
_MESSAGE = _object(
    {
        # The last user message is the request.
        "role": Schema(type=OpenAPIType.STRING, enum=["system", "developer", "user", "assistant"]),
        "content": Schema(one_of=[PROMPT, Schema(type=OpenAPIType.ARRAY, items=_PART, min_items=1)]),
    },
    ["role", "content"],
)
REQUEST_BODIES: dict[str, RequestBody] = {
    "createVideo": _VIDEO,
    "remixVideo": _VIDEO,
    "createVideoTask": _body(
        _object(
            {
                "prompt": PROMPT,
                "model": VIDEO_MODEL,
                "aspect_ratio": Schema(type=OpenAPIType.STRING, enum=["16:9", "9:16"]),
                "duration": Schema(type=OpenAPIType.INTEGER, enum=[10, 15, 25]),
                "image_urls": Schema(type=OpenAPIType.ARRAY, items=STRING),
                "characters": Schema(
                    type=OpenAPIType.ARRAY, items=_object({"url": STRING, "timestamps": STRING}), max_items=1
                ),
                "async_mode": BOOLEAN,
            },
            ["prompt"],
        )
    ),
    "createImage": _body(
        _object({**_IMAGE_FIELDS, "image": STRING}, ["prompt"]),
        _object({**_IMAGE_FIELDS, "n": STRING, "image": BINARY}, ["prompt"]),
    ),
    "editImage": _body(
        _object({**_IMAGE_FIELDS, "image": STRING}, ["prompt", "image"]),
        _object({**_IMAGE_FIELDS, "n": STRING, "image": BINARY}, ["prompt", "image"]),
    ),
    "createChatCompletion": _body(
        _object(
            {
                "model": VIDEO_MODEL,
                "messages": Schema(type=OpenAPIType.ARRAY, items=_MESSAGE, min_items=1),
                "stream": BOOLEAN,
                "stream_options": _object({"include_usage": BOOLEAN}),
                "response_format": _object({"type": STRING}),
                "max_tokens": INTEGER,
                "style_id": STRING,
                "image": STRING,
                "video": STRING,
                "character_options": OBJECT,
            },
            ["messages"],
        )
    ),
    "createCharacter": _body(
        _object(_CHARACTER_FIELDS_OWN),
        _object({**_CHARACTER_FIELDS_OWN, "video": BINARY, "async_mode": STRING}),
    ),
}
_MEDIA = {
    "downloadVideoContent": ("video/mp4", "image/webp"),
    "downloadImageContent": ("image/png",),
}


@dataclass
class GatewayOperation(Operation):
    def __post_init__(self) -> None:
        responses = dict(self.responses or {})
        # Litestar's own 400 describes its validation body, which api.errors never sends.
        responses.pop("400", None)
        responses["4XX"] = REFUSED
        media = _MEDIA.get(self.operation_id or "")
        if media is not None:
            content = {media_type: OpenAPIMediaType(schema=BINARY) for media_type in media}
            responses["200"] = OpenAPIResponse(
                description="The media bytes (Range supported)", content=content
            )
        self.responses = responses
        if self.operation_id in REQUEST_BODIES:
            self.request_body = REQUEST_BODIES[self.operation_id]
        if self.security is None:
            scheme = ADMIN_KEY if "admin" in (self.tags or []) else CLIENT_KEY
            self.security = [{scheme: []}]


def document(app: Litestar) -> None:
    """Gives every route the operation above; the schema is built on its first request, after this."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            handler.operation_class = GatewayOperation
