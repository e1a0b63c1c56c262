"""A real ComfyUI server process loading this pack, and a small HTTP client for it.

:class:`ComfyHost` starts ``main.py`` headless on CPU with the interpreter of its
:class:`~.server_env.ServerEnv` (ComfyUI's requirements + the pack's, nothing else; no
``PYTHONPATH``), the ComfyUI folder as working directory, and every writable folder
(input, output, temp, user, checkpoints, loras) inside one per-session directory. Packs
come from the ``custom_nodes`` folders it is given (an ``extra_model_paths`` YAML lists
them; ComfyUI 0.3.75's ``init_external_custom_nodes`` imports every child of such a
folder as a pack, exactly as it does for ``ComfyUI/custom_nodes``): for this pack, a
folder holding the session's copy ``ComfyUI-HumanSD`` (``pack_copy.py``).
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import requests

from .server_env import ServerEnv, server_environ

PACK_NAME = "ComfyUI-HumanSD"


class HostStartError(RuntimeError):
    """The ComfyUI server did not come up."""


class PromptError(RuntimeError):
    """ComfyUI rejected a prompt or a node failed while running it."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


def _die_with_parent() -> None:
    """In the server child: get SIGKILL when the test process dies (Linux), so a killed
    pytest leaves no server behind on a shared machine."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyHost:
    """One ComfyUI server process; ``start()`` then ``stop()`` (kills its process group)."""

    def __init__(self, env: ServerEnv, custom_nodes: Sequence[Path], work_dir: Path,
                 extra_args: Sequence[str] = ()) -> None:
        self.env = env
        self.extra_args = list(extra_args)
        self.comfy_dir = env.comfy_dir
        self.custom_nodes = list(custom_nodes)
        self.work_dir = work_dir
        self.models_dir = work_dir / "models"
        self.checkpoints_dir = self.models_dir / "checkpoints"
        self.loras_dir = self.models_dir / "loras"
        self.input_dir = work_dir / "input"
        self.output_dir = work_dir / "output"
        self.log_path = work_dir / "comfyui.log"
        self.port = 0
        self.base_url = ""
        self.start_seconds = 0.0
        self._proc: subprocess.Popen | None = None
        self._session = requests.Session()

    # -- process -----------------------------------------------------------------
    def _write_config(self) -> Path:
        for folder in (self.checkpoints_dir, self.loras_dir, self.input_dir, self.output_dir,
                       self.work_dir / "temp", self.work_dir / "user"):
            folder.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "extra_model_paths.yaml"
        # is_default: these folders come first, so nodes that save models (HumanSD Save LoRA / Checkpoint)
        # write into this session's folders, never into the shared ComfyUI's own models/.
        config.write_text(json.dumps({"humansd_tests": {  # JSON is YAML; ComfyUI splits a value on newlines
            "is_default": True,
            "custom_nodes": "\n".join(str(folder) for folder in self.custom_nodes),
            "checkpoints": str(self.checkpoints_dir),
            "loras": str(self.loras_dir),
        }}, indent=1))
        return config

    def start(self, timeout: float = 180.0) -> None:
        config = self._write_config()
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = [
            str(self.env.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch", "--dont-print-server",
            "--extra-model-paths-config", str(config),
            "--database-url", "sqlite:///:memory:",
            "--input-directory", str(self.input_dir),
            "--output-directory", str(self.output_dir),
            "--temp-directory", str(self.work_dir / "temp"),
            "--user-directory", str(self.work_dir / "user"),
            *self.extra_args,
        ]
        began = time.perf_counter()
        with open(self.log_path, "wb") as log_file:
            self._proc = subprocess.Popen(
                cmd, cwd=self.comfy_dir, env=server_environ(), stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
            )
        deadline = began + timeout
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                raise HostStartError(f"ComfyUI exited with code {self._proc.returncode}:\n{self.log_tail()}")
            try:
                if self._session.get(self.base_url + "/system_stats", timeout=2).ok:
                    self.start_seconds = time.perf_counter() - began
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        self.stop()
        raise HostStartError(f"ComfyUI did not answer /system_stats within {timeout:.0f} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        """The server process's id (it runs ``env.python main.py ...``)."""
        if self._proc is None:
            raise HostStartError("the server is not running")
        return self._proc.pid

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    # -- logs ----------------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]

    # -- HTTP ----------------------------------------------------------------------
    def get_json(self, path: str) -> Any:
        response = self._session.get(self.base_url + path, timeout=60)
        response.raise_for_status()
        return response.json()

    def object_info(self) -> dict[str, Any]:
        return self.get_json("/object_info")

    def submit(self, api_prompt: dict[str, Any]) -> str:
        """Queue an API-format prompt; returns its id. Validation errors raise PromptError."""
        body = {"prompt": api_prompt, "client_id": uuid.uuid4().hex}
        response = self._session.post(self.base_url + "/prompt", json=body, timeout=60)
        payload = response.json()
        if response.status_code != 200:
            raise PromptError(f"prompt rejected: {json.dumps(payload)}", payload)
        return payload["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll ``/history/<id>`` until the prompt finished; returns the history entry."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            status = (entry or {}).get("status") or {}
            if status.get("status_str") == "success":
                return entry
            if status.get("status_str") == "error":
                raise PromptError(self._error_message(status), entry)
            if self._proc is not None and self._proc.poll() is not None:
                raise PromptError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise PromptError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def run_prompt(self, api_prompt: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        """Queue ``api_prompt``, wait for it, return its history entry (PromptError on failure)."""
        return self.wait(self.submit(api_prompt), timeout)

    @staticmethod
    def _error_message(status: dict[str, Any]) -> str:
        for kind, data in status.get("messages", []):
            if kind == "execution_error":
                return (f"node {data.get('node_id')} ({data.get('node_type')}) raised "
                        f"{data.get('exception_type')}: {data.get('exception_message')}")
        return f"prompt failed: {json.dumps(status.get('messages'))}"

    @staticmethod
    def outputs_of(history: dict[str, Any]) -> dict[str, Any]:
        """``{node_id: ui_output}`` of a finished prompt (e.g. ``{"images": [...]}``)."""
        return history.get("outputs", {})

    def output_files(self, history: dict[str, Any], kind: str = "images") -> list[Path]:
        """Paths of the files output nodes saved (``type == "output"``), in node-id order."""
        files = []
        for node_id in sorted(self.outputs_of(history), key=str):
            for item in self.outputs_of(history)[node_id].get(kind, []):
                if item.get("type") == "output":
                    files.append(self.output_dir / item.get("subfolder", "") / item["filename"])
        return files

    def upload_image(self, name: str, data: bytes) -> str:
        """Upload through ComfyUI's own ``/upload/image``; returns the stored name."""
        response = self._session.post(
            self.base_url + "/upload/image",
            files={"image": (name, data)}, data={"type": "input", "overwrite": "true"}, timeout=60,
        )
        response.raise_for_status()
        return response.json()["name"]

    def put_input(self, name: str, data: bytes) -> Path:
        """Write a non-image file (pose JSON, ...) into the server's input folder."""
        target = (self.input_dir / name).resolve()
        if target.parent != self.input_dir.resolve():
            raise ValueError(f"input name {name!r} must be a plain file name")
        target.write_bytes(data)
        return target
