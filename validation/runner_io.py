"""Files and provenance of a run: ``results.json``, atomic writes, package versions.

:class:`AtomicWriter` stages every output file and moves them into place together
(``results.json`` last) with interrupts held back, so an interrupted run never leaves
a half-written report; :func:`package_versions` records what a reader needs to
reproduce the figures.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from validation.runner import SuiteRun

#: Top-level keys of ``results.json`` that may differ between two runs with the same
#: seed (wall-clock times, dates, thread count, package versions).
NONDETERMINISTIC_KEYS: tuple[str, ...] = ("timing", "versions")


def package_versions() -> dict[str, Any]:
    """Return the versions that a reader needs to reproduce a report.

    numpy, scipy, numba, torch, statsmodels, matplotlib, tqdm and this project (from the
    installed metadata, without importing torch), Python, the platform, numba's thread
    count and the git commit of the working tree when there is one.
    """
    out: dict[str, Any] = {}
    for dist in (
        "numpy",
        "scipy",
        "numba",
        "torch",
        "statsmodels",
        "pandas",
        "matplotlib",
        "tqdm",
        "abrec-validate",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    out["python"] = platform.python_version()
    out["platform"] = platform.platform()
    try:
        import numba

        out["numba_num_threads"] = int(numba.get_num_threads())
        out["numba_config_num_threads"] = int(numba.config.NUMBA_NUM_THREADS)
    except ImportError:  # pragma: no cover - numba is a dependency
        out["numba_num_threads"] = None
    out["cpu_count"] = os.cpu_count()
    out["git_commit"] = _git_commit()
    return out


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def results_json(run: SuiteRun) -> str:
    """Return the ``results.json`` text of ``run`` (sorted-free, stable key order)."""
    return json.dumps(run.to_dict(), indent=2, allow_nan=False) + "\n"


def strip_nondeterministic(document: dict[str, Any]) -> dict[str, Any]:
    """Return a ``results.json`` document without :data:`NONDETERMINISTIC_KEYS`."""
    return {k: v for k, v in document.items() if k not in NONDETERMINISTIC_KEYS}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM while the block runs (POSIX, main thread only).

    Used around the final ``os.replace`` calls so an interrupt cannot land between
    the replacement of the report files and that of ``results.json``.
    """
    can_block = hasattr(signal, "pthread_sigmask")
    if can_block:
        try:
            import threading

            can_block = threading.current_thread() is threading.main_thread()
        except Exception:  # noqa: BLE001 # pragma: no cover
            can_block = False
    if not can_block:
        yield
        return
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class AtomicWriter:
    """Stage files in temporary files inside ``out_dir`` and move them into place together.

    Nothing appears under its final name until :meth:`commit`, which replaces every
    staged file with ``os.replace`` while interrupts are held back, ``results.json``
    (or whatever was staged first with ``last=True``) last. :meth:`discard` (also called
    on leaving a ``with`` block without a commit) removes the temporary files.
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self._staged: list[tuple[Path, Path, bool]] = []

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def stage(self, relpath: str, data: bytes | str, *, last: bool = False) -> Path:
        """Write ``data`` to a temporary file next to ``out_dir / relpath``."""
        target = self.out_dir / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = data.encode("utf-8") if isinstance(data, str) else data
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.chmod(tmp, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._staged.append((Path(tmp), target, last))
        return target

    def commit(self) -> list[Path]:
        """Move every staged file into place; return the final paths."""
        order = [s for s in self._staged if not s[2]] + [s for s in self._staged if s[2]]
        done: list[Path] = []
        with signals_deferred():
            for tmp, target, _ in order:
                os.replace(tmp, target)
                done.append(target)
            self._staged.clear()
        return done

    def discard(self) -> None:
        """Remove temporary files that were staged but not committed."""
        for tmp, _, _ in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._staged.clear()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_results(run: SuiteRun, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/results.json`` atomically (temporary file + ``os.replace``)."""
    with AtomicWriter(out_dir) as writer:
        writer.stage("results.json", results_json(run), last=True)
        return writer.commit()[-1]
