"""python -m inference {run,plan,soak,train}: the reference video-diffusion runner."""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0

    def __call__(self, done: int, total: int, note: str = "") -> None:
        now = time.perf_counter()
        if not self.tty and done < total and now - self.last_line < 5:
            return
        self.last_line = now
        width = 30
        filled = int(width * done / max(total, 1))
        elapsed = now - self.started
        eta = elapsed / done * (total - done) if done else 0.0
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{elapsed:.0f}s elapsed, ~{eta:.0f}s left {note}"
        )
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _count(text: str) -> int:
    """argparse type: a whole number >= 0 (argparse names the option in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _run_options(args: argparse.Namespace) -> Any:
    from inference.runner import RunOptions

    return RunOptions(
        preset=args.preset,
        prompt=args.prompt,
        frames=args.frames,
        height=args.height,
        width=args.width,
        steps=args.steps,
        seed=args.seed,
        guidance=args.guidance,
        shift=args.shift,
        cfg=args.cfg,
        cache=args.cache,
        max_skips=args.max_skips,
        attention=args.attention,
        device=args.device,
        dtype=args.dtype,
        weights=args.weights,
        out=getattr(args, "out", None),
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", default="tiny-cpu", help="tiny-cpu, wan-1.3b-shape[-L<n>], wan-14b-shape[-L<n>]"
    )
    parser.add_argument(
        "--prompt",
        default="red circle moving right",
        help="tiny-cpu: COLOUR SHAPE moving DIRECTION",
    )
    parser.add_argument("--frames", type=int, default=17, help="4k+1 frames (default 17)")
    parser.add_argument("--height", type=int, help="pixels, multiple of 16")
    parser.add_argument("--width", type=int, help="pixels, multiple of 16")
    parser.add_argument("--steps", type=int, help="denoising steps (tiny-cpu 30, shapes 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--guidance", type=float, help="CFG scale; 1 turns guidance off")
    parser.add_argument("--shift", type=float, help="flow-matching schedule shift")
    parser.add_argument("--cfg", choices=["batched", "sequential"], default="batched")
    parser.add_argument("--cache", default="none", help="none, teacache:T or fbcache:T")
    parser.add_argument("--max-skips", type=_count, default=3, help="most cached steps in a row")
    parser.add_argument(
        "--attention", default="auto", choices=["auto", "flash", "efficient", "math"]
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--weights", type=Path, help="tiny-cpu weights file (default: shipped)")
    parser.add_argument("--threads", type=_positive, help="CPU threads for torch")


def command_run(args: argparse.Namespace) -> int:
    import torch

    from inference.jobs import ReportError, job_event, job_post
    from inference.runner import cache_compare, outputs_write, run_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report_to and not (args.key and args.team):
        raise ValueError("--report-to needs --key and --team")
    options = _run_options(args)
    if args.compare_uncached and options.cache == "none":
        raise ValueError("--compare-uncached needs --cache")
    bar = Progress("denoise")
    result = run_clip(options, on_step=lambda i, n: bar(i, n))
    report = result.report
    if args.compare_uncached:
        report["cache_comparison"] = cache_compare(result, options)
        if options.out:
            outputs_write(options.out, report, None)
    summary = {
        k: report[k]
        for k in ("preset", "tokens", "steps", "forwards_skipped", "cache_hit_rate", "usable",
                  "attention_backend")
    }  # fmt: skip
    summary["phase_times_s"] = {k: round(v, 3) for k, v in report["phase_times_s"].items()}
    if "cache_comparison" in report:
        summary["cache_comparison"] = report["cache_comparison"]
    if report["quality"]:
        summary["quality"] = {
            k: report["quality"][k] for k in ("flicker", "ssim", "trajectory_error", "failed")
        }
    print(json.dumps(summary, indent=2))
    for path in result.paths:
        if path.suffix in {".gif", ".json"}:
            print(f"wrote {path}")
    if args.report_to:
        event = job_event(report, team=args.team, project=args.project, clip_id=args.clip_id)
        try:
            stored = job_post(event, url=args.report_to, key=args.key)
        except ReportError as exc:
            print(f"report not stored: {exc}", file=sys.stderr)
            return 3
        print(f"reported as job {stored.get('source')}:{stored.get('external_id')}")
    return 0


def command_plan(args: argparse.Namespace) -> int:
    from inference.pipeline import Setup, pipeline_get
    from inference.plan import Workload, attention_share, plan, prices_load, prices_read

    workload = Workload(
        pipeline_get(args.shape),
        args.height,
        args.width,
        args.frames,
        steps=args.steps,
        cfg_forwards=1 if args.no_cfg else None,
        regen_rate=args.regen_rate,
        fps=args.fps,
    )
    offload = frozenset(m.strip() for m in (args.offload or "").split(",") if m.strip())
    try:
        counts = [int(n) for n in args.gpus.split(",")]
    except ValueError:
        raise ValueError(f"--gpus {args.gpus!r}: expected counts such as 1 or 1,2,4,8") from None
    setups = [Setup(gpus=n, interconnect=args.interconnect, offload=offload,
                    parallel=args.parallel, mfu=args.mfu, vae_tiling=args.vae_tiling)
              for n in counts]  # fmt: skip
    overrides = {}
    for item in args.price or []:
        name, _, value = item.partition("=")
        try:
            overrides[name] = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"--price {item!r}: expected MODEL=USD_PER_GPU_HOUR") from None
    prices = prices_load(overrides, base=prices_read(args.prices) if args.prices else None)
    if not prices:
        print(
            "prices: none given, so no costs: pass --prices FILE (manage.py planner_prices "
            "--output FILE writes FrameOps' loaded rates) or --price MODEL=USD_PER_GPU_HOUR",
            file=sys.stderr,
        )
    rows = plan(workload, prices, setups=setups, gpu=args.gpu)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    pipeline = workload.pipeline
    print(f"{pipeline.title}: {args.width}x{args.height}, {args.frames} frames, {args.steps} "
          f"steps, {workload.forwards_per_step} forward(s) a step; {workload.tokens:,} tokens, "
          f"{workload.flops_per_clip / 1e15:,.1f} PFLOP a clip "
          f"({attention_share(workload):.0%} in attention); offload: "
          f"{', '.join(sorted(offload)) or 'none'}; VAE decode "
          f"{'tiled' if args.vae_tiling else 'whole'}")  # fmt: skip
    print(
        f"{'GPU':<11} {'n':>2} {'link':<6} {'VRAM':>7} {'peak/GPU':>9} {'fits':>4} "
        f"{'s/clip':>8} {'speedup':>7} {'$/GPU-h':>8} {'$/usable s':>11}  price from"
    )
    for r in rows:
        print(f"{r.gpu:<11} {r.gpus:>2} {r.interconnect:<6} {r.vram_bytes / 1e9:>5.1f}GB "
              f"{r.peak_bytes_per_gpu / 1e9:>7.1f}GB {'yes' if r.fits else 'no':>4} "
              f"{r.seconds_per_clip or 0:>7.0f}s {r.speedup:>6.2f}x "
              f"{_usd(r.price_per_gpu_hour, 2):>8} {_usd(r.cost_per_usable_second, 4):>11}  "
              f"{r.price_source}")  # fmt: skip
    print("assumptions:")
    for note in dict.fromkeys(n for r in rows for n in r.assumptions):
        print(f"  - {note}")
    return 0


def _usd(value: Decimal | None, places: int) -> str:
    return "-" if value is None else f"${value:,.{places}f}"


def command_soak(args: argparse.Namespace) -> int:
    import torch

    from inference.soak import soak

    if args.threads:
        torch.set_num_threads(args.threads)
    total_s = args.minutes * 60
    bar = Progress("soak")
    result = soak(
        _run_options(args),
        args.minutes,
        lambda t, n: bar(int(min(t, total_s)), int(total_s), f"{n} clips"),
    )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "soak.json").write_text(text + "\n")
    summary = {k: v for k, v in result.items() if k not in {"timeline", "nvml"}}
    print(json.dumps(summary, indent=2))
    return 0


def command_train(args: argparse.Namespace) -> int:
    from inference.train import TrainConfig, train, weights_write
    from inference.weights import WEIGHTS_DIR

    config = TrainConfig(
        seed=args.seed, vae_steps=args.vae_steps, dit_steps=args.dit_steps, threads=args.threads
    )
    bars: dict[str, Progress] = {}

    def progress(stage: str, done: int, total: int, loss: float) -> None:
        bars.setdefault(stage, Progress(stage))(done, total, f"loss {loss:.4f}")

    result = train(config, progress)
    out = (
        args.out if args.out.is_absolute() or args.out.parent != Path() else WEIGHTS_DIR / args.out
    )
    path = weights_write(result, config, out)
    print(f"wrote {path} ({path.stat().st_size} bytes) in {result.seconds:.0f}s; "
          f"denoiser loss {result.dit_losses[0]:.3f} -> {result.dit_losses[-1]:.3f}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="generate one clip and report it")
    _add_run_arguments(run)
    run.add_argument("--out", type=Path, help="folder for frames, clip.gif and report.json")
    run.add_argument("--report-to", help="FrameOps URL to POST the job to")
    run.add_argument("--key", help="FrameOps API key with the ingest:write scope")
    run.add_argument("--team", help="team slug the job belongs to")
    run.add_argument("--project", default="", help="project name for the job")
    run.add_argument("--clip-id", help="clip id, to link regenerations")
    run.add_argument(
        "--compare-uncached",
        action="store_true",
        help="also run the same seed without the cache and report the difference",
    )
    run.set_defaults(handler=command_run)

    planner = commands.add_parser(
        "plan", help="peak memory, time and cost per usable second per GPU"
    )
    planner.add_argument(
        "--shape", required=True,
        help="pipeline: wan-1.3b, wan-14b, hunyuan-video (or a DiT shape: tiny-cpu, NAME-L<n>)",
    )  # fmt: skip
    planner.add_argument("--height", type=int, required=True)
    planner.add_argument("--width", type=int, required=True)
    planner.add_argument("--frames", type=int, required=True)
    planner.add_argument("--steps", type=int, default=50)
    planner.add_argument("--regen-rate", type=float, default=0.0, help="share of clips regenerated")
    planner.add_argument(
        "--mfu", type=float, help="model FLOPs utilisation for every GPU (default: per GPU class)"
    )
    planner.add_argument("--fps", type=float, default=16.0)
    planner.add_argument(
        "--no-cfg", action="store_true", help="one forward a step (distilled models)"
    )
    planner.add_argument("--gpus", default="1", help="GPU counts, e.g. 1 or 1,2,4,8")
    planner.add_argument(
        "--interconnect", choices=["pcie", "nvlink"],
        help="between GPUs (default: NVLink where the model has it, else PCIe)",
    )  # fmt: skip
    planner.add_argument(
        "--parallel", choices=["ulysses", "ring", "cfg"], default="ulysses",
        help="sequence parallelism (ulysses, ring) or CFG parallelism then ulysses",
    )  # fmt: skip
    planner.add_argument(
        "--offload", help="comma-separated: model (between phases), text-encoder (on the CPU)"
    )
    planner.add_argument("--vae-tiling", action="store_true", help="decode in spatial tiles")
    planner.add_argument("--gpu", help="one catalog GPU (default: every GPU in the catalog)")
    planner.add_argument(
        "--price", action="append", help="MODEL=USD_PER_GPU_HOUR, e.g. 'H100 SXM=2.5'"
    )
    planner.add_argument(
        "--prices",
        type=Path,
        help="JSON of GPU model to price, as `manage.py planner_prices --output FILE` writes",
    )
    planner.add_argument("--json", action="store_true")
    planner.set_defaults(handler=command_plan)

    soaker = commands.add_parser("soak", help="sustained load; throughput and clocks over time")
    _add_run_arguments(soaker)
    soaker.add_argument("--minutes", type=float, required=True)
    soaker.add_argument("--out", type=Path, help="folder for soak.json (with the timeline)")
    soaker.set_defaults(handler=command_soak)

    trainer = commands.add_parser("train", help="reproduce the tiny-cpu weights from a seed")
    trainer.add_argument("--seed", type=int, default=0)
    trainer.add_argument("--vae-steps", type=int, default=2000)
    trainer.add_argument("--dit-steps", type=int, default=2500)
    trainer.add_argument("--threads", type=_positive, default=2)
    trainer.add_argument("--out", type=Path, default=Path("tiny-cpu.safetensors"))
    trainer.set_defaults(handler=command_train)

    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
