"""Video sources: what a ``video`` argument may be, how each kind is opened for PyAV, and the reading errors.

This file is a flat Hub file: it imports no project module (:mod:`video_decoding_tvtsv2` opens every video
through :func:`open_video_source` and re-exports the errors).

Sources (:data:`VideoSource`)
    A local path, bytes (read from memory), a binary file object (buffered when it cannot seek), or a URL
    (``scheme://...`` that is no local path): ``http(s)://``, ``hf://``, ``s3://``, ... any protocol of an installed
    fsspec file system, opened by :func:`open_video_url`.

Remote videos
    :class:`RemoteVideoFile` is a seekable, read-only binary file over an fsspec URL: PyAV reads it like a local
    file (the MP4 header first, then the packets of the requested window), and each read outside the block fetched
    last is one range request (fsspec ``cat_file(start=, end=)``) of ``block_size`` bytes from there, so only the
    parts of a video the decoder needs are transferred. A server that does not serve byte ranges, or a file of
    unknown size, is read whole (up to the byte limit) into memory instead.

Limits of remote reads (:class:`RemoteReadOptions`; the defaults come from the environment, so that DataLoader
    workers and every process of a launch see the same values)
    * ``timeout`` (``TVTSV2_REMOTE_TIMEOUT``, seconds, default 60): connecting, and each read, of an ``http(s)``
      request; other file systems use their own settings (``HF_HUB_DOWNLOAD_TIMEOUT`` for ``hf://``, ...);
    * ``retries`` (``TVTSV2_REMOTE_RETRIES``, default 3): further attempts of a failed request (timeouts, dropped
      connections, server errors), with exponential back-off from ``backoff`` seconds; a missing file (HTTP
      404/410), a refused one (400/401/403) or an unknown protocol is not retried;
    * ``max_bytes`` (``TVTSV2_REMOTE_MAX_BYTES``, default 4 GiB, ``0``: no limit): a larger file is refused before
      any of it is read (a file of unknown size, as soon as its download passes the limit);
    * ``block_size`` (``TVTSV2_REMOTE_BLOCK_SIZE``, default 4 MiB): bytes per range request (the per-request cost
      is paid per block: 4 MiB kept a prepared 720p read over loopback HTTP within 0.8x of local disk per core in
      ``benchmarks/bench_data.py --source http``, 1 MiB did not).

Errors
    A path or URL that names nothing raises :class:`VideoFileNotFoundError`; an empty file, a folder, and every
    other failure of a remote read (timeout after the retries, a file over the limit, no file system for the
    protocol) a :class:`VideoDecodeError`, the error of a file FFmpeg cannot read. The message names the file or URL
    and the reason: a remote video fails the way a broken local file does.
"""

import io
import os
import re
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Union


__all__ = [
    "RemoteReadOptions",
    "RemoteVideoFile",
    "VideoDecodeError",
    "VideoFileNotFoundError",
    "VideoSource",
    "is_video_url",
    "open_video_source",
    "open_video_url",
]

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


class VideoDecodeError(ValueError):
    """A video cannot be read: the file cannot be opened, has no video stream, or no frame decodes.

    The message names the file and the reason.
    """


class VideoFileNotFoundError(VideoDecodeError, FileNotFoundError):
    """The video path does not exist (both a :class:`VideoDecodeError` and a ``FileNotFoundError``)."""


# "scheme://": what marks a string as a URL (RFC 3986 scheme characters); "C:\\" and relative paths do not match.
_URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_HTTP_PROTOCOLS = ("http", "https")
# HTTP statuses that say the file is not there (or not for us): retrying cannot help.
_FINAL_HTTP_STATUSES = (400, 401, 403, 404, 410)


def is_video_url(source: Any) -> bool:
    """Whether ``source`` is a string of the form ``scheme://...`` (a URL fsspec may open)."""
    return isinstance(source, str) and _URL_PATTERN.match(source) is not None


def _env_number(name: str, default: float, kind: type = float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a number") from None


@dataclass(frozen=True)
class RemoteReadOptions:
    """How remote videos are read (see the module docstring); :meth:`from_env` gives the defaults."""

    timeout: float = 60.0
    retries: int = 3
    max_bytes: int | None = 4 * 1024**3
    block_size: int = 4 * 1024**2
    backoff: float = 0.5

    @classmethod
    def from_env(cls) -> "RemoteReadOptions":
        max_bytes = int(_env_number("TVTSV2_REMOTE_MAX_BYTES", cls.max_bytes, int))
        return cls(
            timeout=_env_number("TVTSV2_REMOTE_TIMEOUT", cls.timeout),
            retries=int(_env_number("TVTSV2_REMOTE_RETRIES", cls.retries, int)),
            max_bytes=max_bytes if max_bytes > 0 else None,
            block_size=int(_env_number("TVTSV2_REMOTE_BLOCK_SIZE", cls.block_size, int)),
        )


def _innermost(error: BaseException) -> BaseException:
    """The first error of a chain: fsspec reports a timeout while looking a file up as a FileNotFoundError raised
    from it."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _is_final(error: BaseException) -> bool:
    """A failure that a retry cannot fix: the file is missing or refused, or the protocol is unknown."""
    if isinstance(error, (FileNotFoundError, PermissionError, ImportError, NotImplementedError, ValueError)):
        return True
    return getattr(error, "status", None) in _FINAL_HTTP_STATUSES


def _reason(error: BaseException) -> str:
    status = getattr(error, "status", None)
    if status is not None:
        return f"HTTP {status} {getattr(error, 'message', '') or ''}".strip()
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = "timed out" if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__ else type(error).__name__
    return f"{name}: {text}" if text else name


class RemoteVideoFile(io.RawIOBase):
    """A seekable read-only binary file over an fsspec URL, with retried range reads and a size limit.

    Use :func:`open_video_url`. ``name`` is the URL (PyAV and error messages show it).
    """

    def __init__(self, url: str, options: RemoteReadOptions | None = None):
        super().__init__()
        self.name = url
        self.options = options or RemoteReadOptions.from_env()
        self._position = 0
        self._block, self._block_start = memoryview(b""), 0  # the bytes of the last range request
        self._buffer: io.BytesIO | None = None  # the whole file, when range reads are not possible
        self._fs, self._path = self._retry("open", self._file_system)
        size = self._retry("open", lambda: self._fs.size(self._path))
        self.size = int(size) if size is not None else None
        limit = self.options.max_bytes
        if self.size is not None and limit is not None and self.size > limit:
            raise VideoDecodeError(
                f"cannot read video {url}: {self.size} bytes, more than the limit of {limit} bytes "
                "(TVTSV2_REMOTE_MAX_BYTES; 0: no limit)"
            )
        if self.size == 0:
            raise VideoDecodeError(f"cannot read video {url}: the file is empty (0 bytes)")
        if self.size is None:
            self._buffer = self._retry("download", self._download)
            self.size = len(self._buffer.getvalue())

    # -- fsspec --------------------------------------------------------------------------------------------
    def _file_system(self) -> tuple[Any, str]:
        import fsspec

        protocol = self.name.split("://", 1)[0].lower()
        storage_options: dict[str, Any] = {}
        if protocol in _HTTP_PROTOCOLS:
            import aiohttp

            timeout = self.options.timeout
            storage_options["client_kwargs"] = {
                "timeout": aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
            }
        return fsspec.core.url_to_fs(self.name, **storage_options)

    def _download(self) -> io.BytesIO:
        limit = self.options.max_bytes
        chunks, total = [], 0
        with self._fs.open(self._path, "rb", block_size=0) as stream:  # block_size 0: a plain streamed GET
            while True:
                chunk = stream.read(self.options.block_size)
                if not chunk:
                    break
                total += len(chunk)
                if limit is not None and total > limit:
                    raise VideoDecodeError(
                        f"cannot read video {self.name}: more than the limit of {limit} bytes "
                        "(TVTSV2_REMOTE_MAX_BYTES; 0: no limit)"
                    )
                chunks.append(chunk)
        return io.BytesIO(b"".join(chunks))

    def _retry(self, what: str, action):
        attempts = 1 + max(0, self.options.retries)
        for attempt in range(attempts):
            try:
                return action()
            except VideoDecodeError:
                raise
            except Exception as raised:  # noqa: BLE001 - fsspec back ends raise many error types
                error = _innermost(raised)
                if isinstance(error, FileNotFoundError) or getattr(error, "status", None) in (404, 410):
                    raise VideoFileNotFoundError(f"cannot read video {self.name}: no such file") from raised
                if _is_final(error) or attempt == attempts - 1:
                    tries = f" after {attempts} tries" if attempts > 1 and not _is_final(error) else ""
                    raise VideoDecodeError(
                        f"cannot read video {self.name}: {what} failed{tries} ({_reason(error)})"
                    ) from raised
                time.sleep(self.options.backoff * 2**attempt)
        raise AssertionError("unreachable")

    # -- io.RawIOBase ------------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), max(0, self.size - self._position))
        if wanted == 0:
            return 0
        data = self._retry("read", lambda: self._read_range(self._position, wanted))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _read_range(self, start: int, length: int) -> bytes:
        if self._buffer is None and not self._block_start <= start < self._block_start + len(self._block):
            # One range request of block_size bytes from `start` (the decoder reads forward from there).
            end = min(self.size, start + max(length, self.options.block_size))
            data = self._fs.cat_file(self._path, start=start, end=end)
            if len(data) == end - start:
                self._block, self._block_start = memoryview(data), start
            elif len(data) == self.size:  # the server ignored the range and sent the whole file: keep it
                self._buffer = io.BytesIO(data)
            else:
                raise OSError(f"asked for bytes {start}-{end - 1}, got {len(data)} bytes")
        if self._buffer is not None:
            self._buffer.seek(start)
            return self._buffer.read(length)
        offset = start - self._block_start
        return self._block[offset : offset + length]

    def close(self) -> None:
        self._block, self._buffer = memoryview(b""), None
        super().close()


def open_video_url(url: str, options: RemoteReadOptions | None = None) -> RemoteVideoFile:
    """The video at ``url`` as a seekable binary file (checked to exist and to be within the byte limit)."""
    return RemoteVideoFile(url, options)


def open_video_source(video: VideoSource, name: str) -> Any:
    """What PyAV opens for ``video``: the path, a file object over bytes, the file object itself (buffered when it
    cannot seek), or for a URL a :class:`RemoteVideoFile`. Raises the errors of the module docstring, naming
    ``name``."""
    if isinstance(video, (bytes, bytearray, memoryview)):
        if len(video) == 0:
            raise VideoDecodeError(f"cannot read video {name}: the data is empty (0 bytes)")
        return io.BytesIO(bytes(video))
    if not isinstance(video, (str, os.PathLike)):  # a binary file object; PyAV needs read() and seek()
        seekable = getattr(video, "seekable", None)
        return video if seekable is not None and seekable() else io.BytesIO(video.read())
    path = os.fspath(video)
    if is_video_url(path) and not os.path.exists(path):
        return open_video_url(path)
    if not os.path.exists(path):
        raise VideoFileNotFoundError(f"cannot read video {name}: no such file")
    if os.path.isdir(path):
        raise VideoDecodeError(f"cannot read video {name}: it is a directory")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"cannot read video {name}: the file is empty (0 bytes)")
    return path
