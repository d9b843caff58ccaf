"""A network camera on 127.0.0.1 for the stall and disconnect tests: JPEG frames over HTTP as
`multipart/x-mixed-replace` (what IP cameras serve besides RTSP), read by the real OpenCV/FFmpeg
path of `vision.sources` (kind `http`). No RTSP server is available here; this one can be made to
fail the ways a camera does: `stall()` keeps the connection open and sends nothing (a frozen
encoder, a congested link), `drop()` closes it (the stream is lost: the reader must reconnect)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

import cv2
import numpy as np

__all__ = ["MjpegCamera", "jpeg"]

BOUNDARY = b"walkoutframe"


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


class MjpegCamera:
    """Serves `frames` (JPEG bytes, cycled) at `fps` to every client that connects to `url`."""

    def __init__(self, frames: list[bytes], fps: float = 20.0) -> None:
        assert frames
        self.frames, self.fps = frames, fps
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/video.mjpg"
        self._flowing = threading.Event()
        self._flowing.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self.connections = 0
        self.sent = 0
        self._threads = [threading.Thread(target=self._accept, name="mjpeg-camera", daemon=True)]

    def start(self) -> MjpegCamera:
        self._threads[0].start()
        return self

    def stall(self) -> None:
        """Keep every connection open, send nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def drop(self) -> None:
        """Close the connections of every client (they reconnect to a camera that streams again)."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            _close(client)

    def stop(self) -> None:
        self._stop.set()
        self._flowing.set()
        self.drop()
        _close(self._server)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> MjpegCamera:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(client,), name="mjpeg-client", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            client.recv(65536)  # the request: any path is the stream
            client.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary="
                           + BOUNDARY + b"\r\nCache-Control: no-cache\r\n\r\n")
            index, next_at = 0, time.monotonic()
            while not self._stop.is_set():
                self._flowing.wait()
                if self._stop.is_set():
                    return
                data = self.frames[index % len(self.frames)]
                client.sendall(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                               + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                self.sent += 1
                index += 1
                next_at = max(next_at + 1 / self.fps, time.monotonic())
                time.sleep(max(0.0, next_at - time.monotonic()))
        except OSError:
            pass  # dropped, or the reader went away
        finally:
            _close(client)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
