"""One policy for every tool that writes an output folder (`tvtsv2 export`, `tvtsv2 convert`, the corpus builders).

* An output folder that exists and is not empty is refused unless the caller passes `overwrite=True`
  (`--overwrite`).
* The result is always built in a temporary folder beside the output (same file system) and moved into place only
  when it is complete. With `overwrite=True` the old folder is then replaced *as a whole* (files the tool did not
  write, e.g. a `model_backup.safetensors`, go with it); a failed or interrupted build leaves the old folder as it
  was and removes its temporary folder.
* An output that is an input, contains an input (e.g. `--output` above the `--videos` folder) or lies inside an
  input folder is refused whatever `overwrite` says (:func:`check_not_an_input`, which tools with their own
  output layout, `tvtsv2 extract` and `prepare-videos`, and training's `output_dir` call too). The only exception
  is an in-place rewrite the caller declares (`allow_same_as=...`: `tvtsv2 export --model D --output D
  --overwrite` replaces `D` by its Hub export). Paths are compared after resolving symbolic links.
* Paths derived from data (ids, file names, archive members) must stay inside the output:
  :func:`path_inside` refuses the others.
* Permissions are checked before any work: an output whose nearest existing folder is not writable, or a path that
  is a file, is refused up front.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from transformers.utils import logging


logger = logging.get_logger(__name__)

__all__ = [
    "FolderReadByName",
    "OutputExistsError",
    "OutputFolderError",
    "check_not_an_input",
    "check_output_folder",
    "path_inside",
    "publish_folder",
    "staged_output_folder",
]


class OutputFolderError(ValueError):
    """The output folder cannot be written under the policy above (the message names it and says why)."""


class OutputExistsError(OutputFolderError, FileExistsError):
    """The output folder exists and is not empty, and overwriting was not asked for."""


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).resolve()


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class FolderReadByName(str):
    """An input folder whose files a tool reads by the names a list gives (never scanned, e.g. the folders of a
    caption corpus's videos): an output may lie inside it (it may still not be it or contain it)."""


def check_not_an_input(
    output: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None],
    *,
    allow_same_as: str | os.PathLike[str] | None = None,
    flag: str = "--output",
) -> None:
    """Refuses an `output` that is one of `inputs`, contains one, or lies inside an input folder.

    Inputs that do not exist on disk (Hub ids, URLs) are ignored. `allow_same_as`: an input `output` may equal.

    Raises:
        OutputFolderError: with one line naming the folder, the input and the reason.
    """
    target = _resolved(output)
    same_ok = _resolved(allow_same_as) if allow_same_as is not None else None
    for given in inputs:
        if given is None or not os.path.lexists(os.path.expanduser(os.fspath(given))):
            continue
        source = _resolved(given)
        if source == target and source == same_ok:
            continue
        if source == target:
            raise OutputFolderError(f"{flag} {output} is also an input; choose another output folder")
        if target in source.parents:
            raise OutputFolderError(
                f"{flag} {output} contains the input {source}; replacing it would delete that input, "
                "choose an output folder outside it"
            )
        if source in target.parents and source.is_dir() and not isinstance(given, FolderReadByName):
            raise OutputFolderError(
                f"{flag} {output} lies inside the input folder {source}; writing there would change that input, "
                "choose an output folder outside it"
            )


def path_inside(folder: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """`folder / relative` if it stays inside `folder` (after `..` and symbolic links are resolved); else a
    ValueError.

    For every path a tool derives from data: an id `../../x`, an absolute path or a link out of the folder would
    otherwise write outside the output.
    """
    root = _resolved(folder)
    text = os.fspath(relative)
    candidate = _resolved(root / text)
    if not text or os.path.isabs(text) or root not in candidate.parents:
        raise ValueError(f"{text!r} does not name a file inside {folder}")
    return Path(folder) / text  # as the caller spells the folder (relative paths computed from it stay right)


def check_output_folder(
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    allow_same_as: str | os.PathLike[str] | None = None,
    flag: str = "--output",
) -> Path:
    """Checks `output` against the policy of this module before any work is done; returns it resolved.

    Args:
        output: the folder to write.
        overwrite: whether a non-empty existing folder may be replaced (after success).
        inputs: files or folders the tool reads; `output` may not be one, contain one or lie in one.
        allow_same_as: an input that `output` may equal (a declared in-place rewrite; `overwrite` still needed).
        flag: how the output is named in messages (`--output`).

    Raises:
        OutputFolderError: with one line naming the folder and the reason.
    """
    target = _resolved(output)
    check_not_an_input(output, inputs, allow_same_as=allow_same_as, flag=flag)
    if target.exists() and not target.is_dir():
        raise OutputFolderError(f"{flag} {output} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{flag} {output} exists and is not empty; to replace it as a whole once the new result is complete, "
            "add --overwrite to the command (overwrite=True in Python)"
        )
    existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        raise OutputFolderError(f"{flag} {output} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{flag} {output} cannot be written: no write permission in {existing}")
    try:  # permissions are not the whole story (read-only mounts, quotas, ACLs): try it
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=f".{target.name}.probe-"))
    except OSError as error:
        raise OutputFolderError(f"{flag} {output} cannot be written: {error.strerror or error} in {existing}") from None
    return target


@contextlib.contextmanager
def staged_output_folder(
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    allow_same_as: str | os.PathLike[str] | None = None,
    flag: str = "--output",
) -> Iterator[Path]:
    """Yields an empty temporary folder beside `output`; when the block succeeds it becomes `output`.

    Checks with :func:`check_output_folder` first. If the block raises (or is interrupted), the temporary folder is
    removed and `output` is left untouched. An existing `output` is moved aside, replaced, then deleted, so that at
    every moment either the old or the new folder is in place under its name.
    """
    target = check_output_folder(
        output, overwrite=overwrite, inputs=inputs, allow_same_as=allow_same_as, flag=flag
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield staging
        publish_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish_folder(staging: Path, target: Path) -> None:
    """Puts the complete folder `staging` in place as `target`: an existing `target` is moved aside, replaced, then
    deleted (put back if the replacement fails), so that either the old or the new folder is there at every moment."""
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 folders; give the result the usual permissions
    if not target.exists():
        os.replace(staging, target)
        return
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)  # put the old folder back
        raise
    shutil.rmtree(old, ignore_errors=True)
    logger.info("replaced %s", target)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
