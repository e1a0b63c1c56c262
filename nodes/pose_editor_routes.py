"""HTTP routes the pose editor of the pack (``web/``) calls on ComfyUI's own server.

- ``POST /humansd/pose/parse`` ``{"text": "<pose JSON>", "source": "pose_json"}`` (``source``,
  optional, names the text in error messages): the pose in the editor's
  layout (:mod:`humansd_core.pose.editor_format`), answered
  ``{"ok": true, "frames", "single", "format", "notes"}``; a text the readers refuse is an
  answer too, ``{"ok": false, "error": "<the readers' message, naming the field>"}`` (status
  200: the request was fine, the pose is not; a user typing half a pose is no failed
  request); a request without a ``text`` string gets status 400. The page never parses
  pose formats itself: pasting, typing and loading all come here.
- ``GET /humansd/pose/images``: ``{"images": [...]}``, the image files at the top of
  ComfyUI's input folder, for the editor's reference image (shown through the server's
  own ``/view`` route, never written into the pose).

Registered on ``server.PromptServer.instance.routes`` when the pack is imported by a
running ComfyUI; importing the pack anywhere else registers nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..humansd_core.errors import HumanSDError

logger = logging.getLogger(__name__)

PARSE_ROUTE = "/humansd/pose/parse"
IMAGES_ROUTE = "/humansd/pose/images"
MAX_TEXT_CHARS = 32 * 1024 * 1024


def parse_request(body: object) -> tuple[int, dict]:
    """``(status, answer)`` for a decoded parse request body."""
    from ..humansd_core.pose.editor_format import editor_pose_from_text

    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return 400, {"ok": False, "error": "request: expected a JSON object {\"text\": \"<pose JSON>\"}"}
    text = body["text"]
    if len(text) > MAX_TEXT_CHARS:
        return 200, {"ok": False, "error": f"text: {len(text)} characters is more than the {MAX_TEXT_CHARS} a pose may have"}
    source = body.get("source") if isinstance(body.get("source"), str) else "pose_json"
    try:
        return 200, {"ok": True, **editor_pose_from_text(text, source[:80]).to_json()}
    except HumanSDError as exc:
        return 200, {"ok": False, "error": str(exc)}


def input_images() -> list[str]:
    """Image files at the top of ComfyUI's input folder, sorted (as LoadImage lists them)."""
    import folder_paths

    folder = Path(folder_paths.get_input_directory())
    if not folder.is_dir():
        return []
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    return folder_paths.filter_files_content_types(files, ["image"])


def register_routes(routes) -> None:
    """Add the editor's routes to an aiohttp ``RouteTableDef`` (ComfyUI's ``PromptServer.routes``)."""
    from aiohttp import web

    @routes.post(PARSE_ROUTE)
    async def parse_pose(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, answer = parse_request(body)
        return web.json_response(answer, status=status)

    @routes.get(IMAGES_ROUTE)
    async def list_images(_request: web.Request) -> web.Response:
        return web.json_response({"images": input_images()})


def install() -> bool:
    """Register the routes on the running ComfyUI server; False when there is none."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    register_routes(instance.routes)
    logger.debug("HumanSD pose editor routes registered")
    return True
