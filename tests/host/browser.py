"""ComfyUI's own frontend in a real browser: headless Chromium driven by Playwright for Python.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``; ``make test`` installs it),
never Playwright's own download. :func:`launch_chromium` starts it; :class:`ComfyPage`
is one tab on a ComfyUI server's ``/`` with what a test of the pack needs:

- :meth:`ComfyPage.open` loads the page, waits for ``window.app.graph``, closes the
  first-run template dialog, and from then on records page errors, console errors and
  the server's ``execution_error`` messages (:attr:`ComfyPage.errors`);
- :meth:`ComfyPage.drop_workflow` loads a workflow file through the frontend's own
  file-drop handler (a ``drop`` event carrying the file), :meth:`ComfyPage.load_graph_data`
  through ``app.loadGraphData``;
- :meth:`ComfyPage.graph_to_prompt` is ``(await app.graphToPrompt()).output``, the API
  prompt the page would queue; :meth:`ComfyPage.set_widget` changes a widget by NAME;
- :meth:`ComfyPage.queue` clicks the Run button and returns the queued prompt's id;
  :meth:`ComfyPage.wait_for_output` waits until ``app.nodeOutputs`` holds a node's images;
- :meth:`ComfyPage.screenshot` saves a PNG under :data:`SCREENSHOT_DIR`;
- canvas helpers for mouse work: :meth:`ComfyPage.graph_to_page` converts graph
  coordinates to page pixels, :meth:`ComfyPage.node_rect` gives a node's box in page
  pixels, :meth:`ComfyPage.drag` drags with intermediate mouse moves, and
  :meth:`ComfyPage.next_frame` waits for the canvas to redraw after an action.

The host tests get one through the ``comfy_page`` fixture (``conftest.py``): one tab, opened
once per session (opening costs seconds: the app bundle, the first-run dialog's thumbnails),
:meth:`ComfyPage.reset` before each test. Anything else can build one from a Playwright
``Page`` and a server URL.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .comfy_server import HostStartError
from .comfy_setup import CACHE_DIR

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container as root, on a machine with no network but loopback: no sandbox,
# no GPU, and none of Chromium's own background traffic (updates, sync, QUIC probes).
LAUNCH_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic")
VIEWPORT = {"width": 1400, "height": 900}
SCREENSHOT_DIR = CACHE_DIR / "screenshots"
APP_TIMEOUT_MS = 120_000

# Runs in the page once the app is up: keep the server's execution errors where Python can read them.
_RECORD_EXECUTION_ERRORS = """() => {
    window.__humansdExecutionErrors = [];
    app.api.addEventListener('execution_error', (event) => window.__humansdExecutionErrors.push(event.detail));
}"""
_NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
_UNREGISTERED_TYPES = "() => app.graph.nodes.map((n) => n.type).filter((t) => !LiteGraph.registered_node_types[t])"
_GRAPH_TO_PROMPT = "async () => (await app.graphToPrompt()).output"
_SET_WIDGET = """([id, name, value]) => {
    const node = app.graph.getNodeById(id);
    if (!node) throw new Error(`no node ${id} in the graph`);
    const widget = (node.widgets || []).find((w) => w.name === name);
    if (!widget) throw new Error(`node ${id} (${node.type}) has no widget ${name}: ${(node.widgets || []).map((w) => w.name)}`);
    widget.value = value;
    widget.callback?.(value, app.canvas, node);
    app.graph.setDirtyCanvas(true, true);
    return widget.value;
}"""
_DROP_FILE = """([selector, name, text]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], name, {type: 'application/json'}));
    const target = document.querySelector(selector);
    for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
    }
}"""
_GRAPH_HAS_NODES = "(ids) => ids.every((id) => app.graph.getNodeById(id)) && app.graph.nodes.length === ids.length"
_OUTPUT_OR_ERROR = """([id, kind]) => (app.nodeOutputs[id]?.[kind]?.length > 0)
    || window.__humansdExecutionErrors.length > 0"""
_NODE_IMAGES_SHOWN = """(id) => {
    const imgs = app.graph.getNodeById(id)?.imgs;
    return imgs?.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0);
}"""
_GRAPH_TO_PAGE = """([x, y]) => {
    const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([x, y]);
    const box = app.canvas.canvas.getBoundingClientRect();
    return [box.left + cx, box.top + cy];
}"""
_NODE_RECT = """(id) => {
    const node = app.graph.getNodeById(id);
    if (!node) throw new Error(`no node ${id} in the graph`);
    const [x, y, w, h] = node.boundingRect;
    return [x, y, w, h];
}"""


# Files the frontend asks a fresh ComfyUI for that a fresh user folder does not have (404s).
OPTIONAL_SERVER_FILES = ("/user.css", "/api/userdata/user.css", "/api/userdata?dir=workflows",
                         "/api/userdata?dir=subgraphs", "/api/userdata/comfy.templates.json", "/favicon.ico")
# A request the page itself cancelled (a thumbnail of a closed dialog, a superseded save).
CANCELLED = "net::ERR_ABORTED"
# Errors the frontend raises by itself (Vue logs them to the console), with no extension involved: 1.32.9's
# ``useRenderModeSetting`` sets a setting before it is registered, and the setting store's
# ``onChange`` then reads ``setting.id`` of undefined (src/platform/settings/settingStore.ts).
KNOWN_FRONTEND_ERRORS = ("TypeError: Cannot read properties of undefined (reading 'id')\n    at onChange ",)


def _is_known_frontend_error(error: str) -> bool:
    """``error`` (its stack) is one of :data:`KNOWN_FRONTEND_ERRORS`, raised in the frontend's own bundle."""
    return "/extensions/" not in error and error.startswith(KNOWN_FRONTEND_ERRORS)


class BrowserError(HostStartError):
    """The browser could not be started or the frontend did not come up."""


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's headless Chromium with :data:`LAUNCH_ARGS`."""
    if not CHROMIUM.is_file():
        raise BrowserError(f"{CHROMIUM} not found: `make test` installs it (apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS), headless=True)


class ComfyPage:
    """One browser tab on a ComfyUI server's frontend (see the module docstring)."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.open_seconds = 0.0
        page.on("pageerror", lambda error: self.page_errors.append(error.stack or error.message))
        page.on("console", self._on_console)
        page.on("response", lambda r: r.status >= 400 and self.failed_requests.append(f"{r.status} {r.url}"))
        page.on("requestfailed", lambda r: self.failed_requests.append(f"{r.failure} {r.url}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        # A failed load is also a failed request, judged there with its URL.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    # -- page ----------------------------------------------------------------------
    def open(self, timeout_ms: int = APP_TIMEOUT_MS) -> ComfyPage:
        """Load ``/``, wait for the app and its graph, close the first-run template dialog."""
        began = time.perf_counter()
        self.page.goto(self.base_url + "/", timeout=timeout_ms)
        try:
            self.page.wait_for_function("() => window.app?.graph && window.LiteGraph?.registered_node_types",
                                        timeout=timeout_ms)
        except Exception as exc:
            raise BrowserError(f"the frontend at {self.base_url} did not create window.app.graph: {exc}\n"
                               f"page errors: {self.page_errors}\nconsole errors: {self.console_errors}") from exc
        self.page.evaluate(_RECORD_EXECUTION_ERRORS)
        self.close_dialogs()
        self.open_seconds = time.perf_counter() - began
        return self

    def templates_dialog(self):
        """The template browser's content pane (a Playwright locator)."""
        return self.page.get_by_test_id("template-workflows-content")

    def close_dialogs(self, timeout_ms: int = 30_000) -> None:
        """Close the first-run template dialog (it opens once the template list has loaded)."""
        try:
            self.templates_dialog().wait_for(state="visible", timeout=timeout_ms)
        except PlaywrightTimeoutError:
            return  # no first-run dialog on this page
        self.close_templates_dialog(timeout_ms)

    def close_templates_dialog(self, timeout_ms: int = 30_000) -> None:
        """Close the template browser if it is open: Escape first; the 1.3x frontends make that dialog
        not closable by Escape, so then its close button (the dialog's ``pi-times`` icon button)."""
        if not self.templates_dialog().is_visible():
            return
        self.page.keyboard.press("Escape")
        try:
            self.templates_dialog().wait_for(state="hidden", timeout=1_000)
            return
        except PlaywrightTimeoutError:
            pass
        dialog = self.page.get_by_role("dialog").filter(has=self.templates_dialog())
        dialog.locator("button:has(i.pi-times)").click()
        self.templates_dialog().wait_for(state="hidden", timeout=timeout_ms)

    def reset(self) -> ComfyPage:
        """Make the open page ready for the next test: template browser closed, a new blank workflow,
        nothing recorded (errors, failed requests)."""
        self.close_templates_dialog()
        self.run_command("Comfy.NewBlankWorkflow")
        self.page.evaluate("() => { window.__humansdExecutionErrors = []; }")
        self.page_errors.clear()
        self.console_errors.clear()
        self.failed_requests.clear()
        return self

    @property
    def execution_errors(self) -> list[Any]:
        return self.page.evaluate("() => window.__humansdExecutionErrors")

    @property
    def errors(self) -> list[str]:
        """What a test of the pack must not see: page errors and console errors (but
        :data:`KNOWN_FRONTEND_ERRORS`), server execution errors, and failed requests to the server (but its
        :data:`OPTIONAL_SERVER_FILES` and requests the page cancelled itself). Requests to other
        hosts fail here (no network) and are not counted."""
        raised = [e for e in self.page_errors + self.console_errors if not _is_known_frontend_error(e)]
        failed = [r for r in self.failed_requests if self._counts(r)]
        return raised + [json.dumps(e) for e in self.execution_errors] + failed

    def _counts(self, failed_request: str) -> bool:
        reason, url = failed_request.rsplit(" ", 1)
        if not url.startswith(self.base_url) or reason == CANCELLED:
            return False
        return not url[len(self.base_url):].startswith(OPTIONAL_SERVER_FILES)

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def next_frame(self) -> None:
        """Wait two animation frames: the canvas has drawn what the last action changed."""
        self.page.evaluate(_NEXT_FRAME)

    def screenshot(self, name: str, clip: tuple[float, float, float, float] | None = None) -> Path:
        """Save the page, or its ``clip = (left, top, width, height)`` part, as ``SCREENSHOT_DIR/<name>.png``."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        self.next_frame()
        path = SCREENSHOT_DIR / f"{name}.png"
        box = None if clip is None else dict(zip(("x", "y", "width", "height"), clip))
        self.page.screenshot(path=str(path), clip=box)
        return path

    # -- workflows -----------------------------------------------------------------
    def drop_workflow(self, path: Path, timeout_ms: int = 30_000) -> None:
        """Drop the workflow file at ``path`` on the canvas (the frontend's drop handler) and wait for its nodes."""
        workflow = json.loads(path.read_text())
        self.page.evaluate(_DROP_FILE, ["#graph-canvas", path.name, path.read_text()])
        self._wait_for_nodes(workflow, timeout_ms)

    def load_graph_data(self, workflow: dict[str, Any], name: str, timeout_ms: int = 30_000) -> None:
        """``app.loadGraphData(workflow, true, true, name)`` and wait for its nodes."""
        self.page.evaluate("([w, name]) => app.loadGraphData(w, true, true, name)", [workflow, name])
        self._wait_for_nodes(workflow, timeout_ms)

    def _wait_for_nodes(self, workflow: dict[str, Any], timeout_ms: int) -> None:
        self.page.wait_for_function(_GRAPH_HAS_NODES, arg=[n["id"] for n in workflow["nodes"]], timeout=timeout_ms)
        self.next_frame()

    def run_command(self, command_id: str) -> None:
        """Run a frontend command (``app.extensionManager.command.execute``), e.g. ``Comfy.BrowseTemplates``."""
        self.page.evaluate("(id) => app.extensionManager.command.execute(id)", command_id)
        self.next_frame()

    def fit_view(self) -> None:
        """Pan and zoom so the whole graph is in view (the frontend's "Fit view" command)."""
        self.run_command("Comfy.Canvas.FitView")

    def unregistered_node_types(self) -> list[str]:
        """Types of graph nodes the frontend has no definition for (drawn as red "missing" boxes)."""
        return self.page.evaluate(_UNREGISTERED_TYPES)

    def graph_to_prompt(self) -> dict[str, Any]:
        """The API prompt the page would queue for the current graph."""
        return self.page.evaluate(_GRAPH_TO_PROMPT)

    def set_widget(self, node_id: int, name: str, value: Any) -> Any:
        """Set node ``node_id``'s widget ``name`` (found by name, never by index) to ``value``; returns what it holds."""
        return self.page.evaluate(_SET_WIDGET, [node_id, name, value])

    def queue(self, timeout_ms: int = 60_000) -> str:
        """Click the Run button; returns the id of the prompt the server accepted."""
        with self.page.expect_response(
                lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST", timeout=timeout_ms) as answer:
            # the test id sits on a wrapper of the button (frontend 1.3x) or on the button itself (1.5x)
            self.page.locator('button[data-testid="queue-button"], [data-testid="queue-button"] button').first.click()
        body = answer.value.json()
        if answer.value.status != 200 or body.get("node_errors"):
            raise AssertionError(f"the server refused the page's prompt ({answer.value.status}): {json.dumps(body)}")
        return body["prompt_id"]

    def wait_for_output(self, node_id: int | str, kind: str = "images", timeout_ms: int = 600_000) -> list[Any]:
        """Wait until ``app.nodeOutputs[node_id][kind]`` is non-empty; an execution error fails at once."""
        self.page.wait_for_function(_OUTPUT_OR_ERROR, arg=[str(node_id), kind], timeout=timeout_ms,
                                    polling=250)
        errors = self.execution_errors
        if errors:
            raise AssertionError(f"the prompt failed on the server: {json.dumps(errors)}")
        return self.page.evaluate("([id, kind]) => app.nodeOutputs[id][kind]", [str(node_id), kind])

    def wait_for_node_images(self, node_id: int, timeout_ms: int = 60_000) -> None:
        """Wait until node ``node_id`` shows its output images (``node.imgs`` loaded in the page)."""
        self.page.wait_for_function(_NODE_IMAGES_SHOWN, arg=node_id, timeout=timeout_ms)
        self.next_frame()

    # -- canvas coordinates and the mouse ------------------------------------------
    def graph_to_page(self, x: float, y: float) -> tuple[float, float]:
        """Page pixels of the graph (canvas-space) point ``(x, y)`` at the canvas's current pan and zoom."""
        px, py = self.page.evaluate(_GRAPH_TO_PAGE, [x, y])
        return px, py

    def node_rect(self, node_id: int) -> tuple[float, float, float, float]:
        """``(left, top, width, height)`` in page pixels of node ``node_id`` (title bar included)."""
        x, y, w, h = self.page.evaluate(_NODE_RECT, node_id)
        left, top = self.graph_to_page(x, y)
        right, bottom = self.graph_to_page(x + w, y + h)
        return left, top, right - left, bottom - top

    def graph_rect(self, margin: float = 16.0) -> tuple[float, float, float, float]:
        """``(left, top, width, height)`` in page pixels around every node of the graph, within the viewport."""
        rects = [self.node_rect(node_id) for node_id in self.page.evaluate("() => app.graph.nodes.map((n) => n.id)")]
        left = max(0.0, min(r[0] for r in rects) - margin)
        top = max(0.0, min(r[1] for r in rects) - margin)
        right = min(VIEWPORT["width"], max(r[0] + r[2] for r in rects) + margin)
        bottom = min(VIEWPORT["height"], max(r[1] + r[3] for r in rects) + margin)
        return left, top, right - left, bottom - top

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 10) -> None:
        """Press at ``start``, move to ``end`` in ``steps`` moves, release (page pixels); then wait a frame."""
        self.page.mouse.move(*start)
        self.page.mouse.down()
        self.page.mouse.move(*end, steps=steps)
        self.page.mouse.up()
        self.next_frame()
