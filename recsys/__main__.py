"""Command line: ``python -m recsys compare ...`` and ``python -m recsys sweep ...``.

``compare`` trains the chosen methods over several seeds on synthetic or MovieLens data
and writes ``results.json``, ``results.md`` (the printed table) and
``recall_per_epoch.png`` to ``--out``; ``sweep`` repeats an in-batch comparison with
and without the logQ correction at several temperatures (Yi et al. 2019, Table 1).

Exit status: 0 on success; 2 on bad input, reported before any training (including an
``--out`` that is a file or cannot be written); 130 when interrupted (Ctrl-C), after
writing the seeds completed so far to ``--out``/``partial_results.json`` (never a
half-written ``results.json``). ``--threads`` defaults to 1: on a shared 2-core machine
torch's default thread count ran several times slower (``docs/recsys.md``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recsys.data import Interactions


def _list_of(cast: type) -> Callable[[str], tuple]:
    """Return an argparse type parsing ``"a,b,c"`` into a tuple of ``cast`` values."""

    def parse(text: str) -> tuple:
        try:
            return tuple(cast(v) for v in text.split(",") if v.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"expected {cast.__name__} values separated by commas; got {text!r}"
            ) from exc

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", default="synthetic", help="'synthetic' or a MovieLens path")
    common.add_argument("--seeds", type=int, default=3, help="number of runs (user folds)")
    common.add_argument("--epochs", type=int, default=1)
    common.add_argument("--folds", type=int, default=10, help="user folds (1/folds held out)")
    common.add_argument("--out", required=True, help="output directory")
    common.add_argument("--seed", type=int, default=0, help="root seed")
    common.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    common.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: measured fastest on a shared machine; 0: torch's)",
    )
    common.add_argument(
        "--init-scale",
        type=float,
        default=None,
        help="std of the N(0, s^2) embedding tables (default 1/sqrt(tables*dim); 1 = N(0, 1))",
    )
    common.add_argument("--batch-size", type=int, default=256)
    common.add_argument("--negatives", type=int, default=256, help="B' uniform negatives")
    common.add_argument("--lr", type=float, default=0.01)
    common.add_argument("--temperature", type=float, default=0.05, help="cos/temperature")
    common.add_argument(
        "--correction",
        default="inclusion_probability",
        choices=("inclusion_probability", "expected_count"),
    )
    common.add_argument("--frequency", default="exact", choices=("exact", "streaming"))
    common.add_argument("--ks", type=_list_of(int), default=(10, 50, 100))
    common.add_argument("--max-history", type=int, default=30)
    common.add_argument("--eval-positions", default="all", choices=("all", "last"))
    common.add_argument(
        "--keep-history", action="store_true", help="do not exclude history from rankings"
    )
    common.add_argument("--threshold", type=float, default=3.0, help="positive rating")
    common.add_argument("--min-positives", type=int, default=33)
    common.add_argument("--synthetic-users", type=int, default=3000)
    common.add_argument("--synthetic-items", type=int, default=1500)
    common.add_argument("--synthetic-ratings", type=float, default=80.0, help="mean per user")
    common.add_argument("--no-progress", action="store_true")
    compare = sub.add_parser("compare", parents=[common], help="compare training methods")
    compare.add_argument("--methods", default="sampled,inbatch,mixed")
    compare.add_argument(
        "--world-size",
        type=int,
        default=1,
        help="processes sharing each global batch (gloo on CPU, NCCL on GPUs)",
    )
    sweep = sub.add_parser("sweep", parents=[common], help="temperature sweep for in-batch")
    sweep.add_argument("--methods", default="inbatch,inbatch-nologq")
    sweep.add_argument("--temperatures", type=_list_of(float), default=(0.02, 0.05, 0.1, 0.2, 0.5))
    return parser


def _load(args: argparse.Namespace) -> tuple[Interactions, str]:
    from recsys.data import load_movielens, synthetic_movielens

    if args.data == "synthetic":
        data = synthetic_movielens(
            args.synthetic_users,
            args.synthetic_items,
            mean_ratings=args.synthetic_ratings,
            threshold=args.threshold,
            min_positives=args.min_positives,
            rng=args.seed,
        )
        label = (
            f"synthetic(users={args.synthetic_users}, items={args.synthetic_items}, "
            f"mean_ratings={args.synthetic_ratings:g}, seed={args.seed})"
        )
        return data, label
    data = load_movielens(args.data, threshold=args.threshold, min_positives=args.min_positives)
    return data, str(args.data)


PARTIAL_NAME = "partial_results"
"""Stem of the file holding the completed seeds of an interrupted run."""


def _check_out_dir(out: str) -> Path:
    """Create ``out`` if needed and check that files can be written there (before training)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`--out` must be a directory; {out!r} exists and is not one.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_probe{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"`--out` {out!r} cannot be written: {exc.strerror or exc}.") from exc
    return path


class _Interrupted(BaseException):
    """Ctrl-C while ``main`` runs, raised by our SIGINT handler instead of KeyboardInterrupt.

    A KeyboardInterrupt that surfaces inside code run by the interpreter's C layer (an
    extension module's import, for instance) marks the process as "interrupted" for
    good: even when caught, the interpreter then ends with SIGINT (status -2) instead of
    the 130 this command promises. An exception of our own does not set that mark.
    """


def _raise_interrupted(signum, frame) -> None:
    raise _Interrupted


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _raise_interrupted)
        try:
            return _main(argv)
        finally:
            signal.signal(signal.SIGINT, previous)
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    partial: dict[str, Any] = {}

    def keep(result: dict[str, Any]) -> None:
        partial.clear()
        partial.update(result)

    try:
        if args.threads < 0:
            raise ValueError(f"`--threads` must be >= 0; got {args.threads}.")
        out_dir = _check_out_dir(args.out)  # before torch is imported: fails in seconds
        from recsys.compare import (
            CompareConfig,
            format_sweep_table,
            format_table,
            run_comparison,
            temperature_sweep,
            write_results,
        )
        from recsys.train import parse_methods

        methods = parse_methods(args.methods)
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        data, label = _load(args)
        config = CompareConfig(
            methods=methods,
            n_seeds=args.seeds,
            n_epochs=args.epochs,
            n_folds=args.folds,
            batch_size=args.batch_size,
            n_negatives=args.negatives,
            lr=args.lr,
            temperature=args.temperature,
            correction=args.correction,
            frequency=args.frequency,
            max_history=args.max_history,
            ks=args.ks,
            exclude_history=not args.keep_history,
            eval_positions=args.eval_positions,
            init_scale=args.init_scale,
        )
        kwargs = {
            "rng": args.seed,
            "device": args.device,
            "progress": not args.no_progress,
            "data_label": label,
        }
        if args.command == "compare":
            result = run_comparison(
                data, config, on_seed_done=keep, world_size=args.world_size, **kwargs
            )
            paths = write_results(result, out_dir)
            print(format_table(result))
        else:
            result = temperature_sweep(data, args.temperatures, config, methods=methods, **kwargs)
            paths = write_results(result, out_dir)
            print(format_sweep_table(result))
    except (ValueError, TypeError, FileNotFoundError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except (KeyboardInterrupt, _Interrupted):
        if partial:
            written = write_results(partial, out_dir, name=PARTIAL_NAME)
            done = f"{partial['completed_seeds']} of {args.seeds} seed(s) completed, kept in "
            done += str(written["json"])
        else:
            done = "no seed completed, nothing written"
        print(f"{parser.prog}: interrupted; {done}", file=sys.stderr)
        return 130
    sys.stdout.flush()
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
