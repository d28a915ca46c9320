"""Media relay benchmark: relay CPU per viewer, probe fps and latency, memory.

    python bench/media_relay.py [--counts 1,2,4,8,16,32,64] [--naive-counts 1,2,4,8]
                                [--loop asyncio|uvloop]

Processes (all on 127.0.0.1, no STUN):
- relay: ``MediaService`` (packet forwarding) or, for comparison, the naive design
  (aiortc ``contrib.media.MediaRelay``: decode once, encode per viewer). Pinned to
  CPU 0; answers offers over a JSON-lines socket and reports its own CPU time
  (``time.process_time``, all threads; its kernel part, ``os.times().system``,
  printed beside it) and RSS.
- publisher: 640x480 @ 30 fps VP8 (aiortc's encoder, 500 kbps target) + Opus,
  the capture time drawn into each picture.
- viewers: cheap aiortc receivers that reassemble frames but never decode,
  spread over several processes, plus one probe that decodes everything and
  reads the capture time back (publish-to-display latency: encode, relay, both
  jitter buffers and decode included).
Load processes are pinned to CPU 1. For each viewer count the relay's CPU is
sampled over ``--windows`` windows of ``--window`` seconds (median reported);
CPU per viewer is the least-squares slope over the counts. Every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media.clients import PublisherClient, ViewerClient  # noqa: E402
from media.config import MediaConfig  # noqa: E402

CONFIG = MediaConfig(ice_addresses=("127.0.0.1",))
SESSION = 1
VIEWERS_PER_PROCESS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > cpu:  # type: ignore[operator]
        os.sched_setaffinity(0, {cpu})


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ relay side


class NaiveRelay:
    """aiortc's MediaRelay: the publisher's track is decoded once and every
    viewer's sender encodes its own copy."""

    def __init__(self, config: MediaConfig) -> None:
        from aiortc.contrib.media import MediaRelay

        self._config = config
        self._relay = MediaRelay()
        self._tracks: dict[str, Any] = {}
        self._pcs: list[Any] = []

    async def publish(self, session_id: int, offer: str) -> str:
        from aiortc import RTCSessionDescription

        from media.ice import create_peer_connection, set_local_description

        pc = create_peer_connection(self._config)
        self._pcs.append(pc)

        @pc.on("track")  # type: ignore[untyped-decorator]
        def on_track(track: Any) -> None:
            self._tracks[track.kind] = track

        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await set_local_description(pc, self._config.ice_addresses)
        return str(pc.localDescription.sdp)

    async def play(self, session_id: int, offer: str) -> str:
        from aiortc import RTCSessionDescription

        from media.ice import create_peer_connection, set_local_description

        pc = create_peer_connection(self._config)
        self._pcs.append(pc)
        for kind in ("video", "audio"):
            if kind in self._tracks:
                pc.addTrack(self._relay.subscribe(self._tracks[kind], buffered=False))
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await set_local_description(pc, self._config.ice_addresses)
        return str(pc.localDescription.sdp)

    def viewer_count(self, session_id: int) -> int:
        return sum(1 for pc in self._pcs[1:] if pc.connectionState == "connected")

    async def close(self) -> None:
        for pc in self._pcs:
            await pc.close()


class NullLifecycle:
    async def on_publisher_started(self, session_id: int) -> None:
        pass

    async def on_publisher_stopped(self, session_id: int, reason: str) -> None:
        pass


def relay_main(port: int, mode: str, loop: str) -> None:
    pin(0)
    if loop == "uvloop":  # what ``python app.py`` runs on when uvloop is installed
        import uvloop

        uvloop.run(relay_serve(port, mode))
    else:
        asyncio.run(relay_serve(port, mode))


async def relay_serve(port: int, mode: str) -> None:
    from media.service import MediaService

    relay: Any = NaiveRelay(CONFIG) if mode == "naive" else MediaService(CONFIG, NullLifecycle())
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await serve_requests(reader, writer)

    async def serve_requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            req = json.loads(line)
            op = req["op"]
            reply: dict[str, Any]
            if op == "publish":
                res = await relay.publish(SESSION, req["sdp"])
                reply = {"sdp": res if isinstance(res, str) else res.answer_sdp}
            elif op == "play":
                res = await relay.play(SESSION, req["sdp"])
                reply = {"sdp": res if isinstance(res, str) else res.answer_sdp}
            elif op == "stats":
                stats = relay.viewer_stats(SESSION) if hasattr(relay, "viewer_stats") else []
                reply = {
                    "cpu": time.process_time(),
                    "sys": os.times().system,
                    "rss_kib": rss_kib(),
                    "viewers": relay.viewer_count(SESSION),
                    "skipped": sum(s.frames_skipped for s in stats),
                    "resets": sum(s.keyframe_resets for s in stats),
                }
            else:
                done.set()
                reply = {}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        async with asyncio.timeout(3600):
            await done.wait()
    finally:
        server.close()
        await relay.close()


class Control:
    """JSON-lines client of the relay process."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def call(self, **req: Any) -> dict[str, Any]:
        async with self._lock:
            if self._rw is None:
                for _ in range(100):
                    try:
                        self._rw = await asyncio.open_connection("127.0.0.1", self._port)
                        break
                    except OSError:
                        await asyncio.sleep(0.1)
            assert self._rw is not None
            reader, writer = self._rw
            writer.write(json.dumps(req).encode() + b"\n")
            await writer.drain()
            async with asyncio.timeout(30):
                return json.loads(await reader.readline())  # type: ignore[no-any-return]

    def exchange(self, op: str) -> Callable[[str], Awaitable[str]]:
        async def run(offer: str) -> str:
            return str((await self.call(op=op, sdp=offer))["sdp"])

        return run


# ------------------------------------------------------------------- load side


def load_main(role: str, port: int, conn: Connection) -> None:
    pin(1)
    asyncio.run(load_serve(role, port, conn))


async def load_serve(role: str, port: int, conn: Connection) -> None:
    """A publisher, a group of cheap viewers, or the probe; driven over ``conn``."""
    control = Control(port)
    loop = asyncio.get_running_loop()
    peers: list[Any] = []
    if role == "publisher":
        pub = PublisherClient(CONFIG, video_codec="video/VP8", width=640, height=480)
        await pub.connect(control.exchange("publish"))
        peers.append(pub)
        conn.send("ready")
    mark = (0, 0.0)
    try:
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "add":
                new = [
                    ViewerClient(CONFIG, decode=role == "probe", measure_latency=role == "probe")
                    for _ in range(cmd[1])
                ]
                for v in new:
                    await v.connect(control.exchange("play"))
                peers.extend(new)
                for v in new:
                    await v.wait_for("video", encoded=15, within_s=20)
                    if role != "probe":
                        v.mute()  # proven to receive; now only SRTP-decrypt
                conn.send("ok")
            elif cmd[0] == "mark":  # probe: start a measurement window
                s = peers[0].stats["video"]
                s.latencies_ms.clear()
                s.decode_delays_ms.clear()
                mark = (s.decoded, time.monotonic())
                conn.send("ok")
            elif cmd[0] == "read":
                s = peers[0].stats["video"]
                elapsed = time.monotonic() - mark[1]
                conn.send(
                    {
                        "encoded": s.encoded,
                        "fps": (s.decoded - mark[0]) / elapsed,
                        "latencies": list(s.latencies_ms),
                        "decode_delays": list(s.decode_delays_ms),
                        "audio": peers[0].stats["audio"].encoded,
                    }
                )
            elif cmd[0] == "cpu":
                conn.send(time.process_time())
            else:
                break
    finally:
        for p in peers:
            await p.close()
        conn.send("closed")


class Load:
    """A load process and its command pipe."""

    def __init__(self, ctx: Any, role: str, port: int) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=load_main, args=(role, port, child), daemon=True)
        self.proc.start()

    def ask(self, *cmd: Any, timeout: float = 120) -> Any:
        self.conn.send(cmd)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"load process did not answer {cmd}")
        return self.conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, EOFError):
            self.ask("stop", timeout=30)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


# ------------------------------------------------------------------ controller


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def run_mode(
    mode: str, counts: list[int], window: float, windows: int, loop: str = "asyncio"
) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    port = free_port()
    relay = ctx.Process(target=relay_main, args=(port, mode, loop), daemon=True)
    relay.start()
    control = Control(port)
    loads: list[Load] = []
    rows: list[dict[str, Any]] = []
    try:
        publisher = Load(ctx, "publisher", port)
        loads.append(publisher)
        if not publisher.conn.poll(60) or publisher.conn.recv() != "ready":
            raise TimeoutError("publisher did not connect")
        await asyncio.sleep(1.0)  # media flowing
        probe = Load(ctx, "probe", port)
        loads.append(probe)
        probe.ask("add", 1)
        groups: list[tuple[Load, int]] = []
        cheap = 0
        for n in counts:
            while cheap + 1 < n:  # the probe is viewer number one
                if not groups or groups[-1][1] >= VIEWERS_PER_PROCESS:
                    load = Load(ctx, "viewers", port)
                    loads.append(load)
                    groups.append((load, 0))
                load, held = groups[-1]
                k = min(VIEWERS_PER_PROCESS - held, n - 1 - cheap)
                load.ask("add", k)
                groups[-1] = (load, held + k)
                cheap += k
            await asyncio.sleep(2.0)  # settle: keyframes for the new viewers, ICE
            cpu_samples: list[float] = []
            sys_samples: list[float] = []
            load_samples: list[float] = []
            fps: list[float] = []
            latencies: list[float] = []
            decode_delays: list[float] = []
            for _ in range(windows):
                probe.ask("mark")
                s0 = await control.call(op="stats")
                l0 = sum(load.ask("cpu") for load in loads)
                t0 = time.monotonic()
                await asyncio.sleep(window)
                s1 = await control.call(op="stats")
                l1 = sum(load.ask("cpu") for load in loads)
                elapsed = time.monotonic() - t0
                got = probe.ask("read")
                cpu_samples.append(100 * (s1["cpu"] - s0["cpu"]) / elapsed)
                sys_samples.append(100 * (s1["sys"] - s0["sys"]) / elapsed)
                load_samples.append(100 * (l1 - l0) / elapsed)
                fps.append(got["fps"])
                latencies += got["latencies"]
                decode_delays += got["decode_delays"]
            row = {
                "mode": mode,
                "viewers": n,
                "connected": s1["viewers"],
                "relay_cpu_pct": statistics.median(cpu_samples),
                "relay_sys_pct": statistics.median(sys_samples),
                "load_cpu_pct": statistics.median(load_samples),
                "probe_fps": statistics.median(fps),
                "p50_ms": percentile(latencies, 0.5),
                "p95_ms": percentile(latencies, 0.95),
                "rss_mib": s1["rss_kib"] / 1024,
                "skipped": s1["skipped"],
                "resets": s1["resets"],
                "latency_samples": len(latencies),
                "probe_decode_p50_ms": percentile(decode_delays, 0.5),
            }
            rows.append(row)
            print(
                f"{mode:8s} N={n:3d} connected={row['connected']:3d} "
                f"relay CPU {row['relay_cpu_pct']:6.1f}% (system {row['relay_sys_pct']:.1f}%)  "
                f"load CPU {row['load_cpu_pct']:6.1f}%  "
                f"probe {row['probe_fps']:5.1f} fps  latency p50 {row['p50_ms']:6.1f} "
                f"p95 {row['p95_ms']:6.1f} ms ({row['latency_samples']} samples, "
                f"probe decode p50 {row['probe_decode_p50_ms']:.1f} ms)  "
                f"RSS {row['rss_mib']:6.1f} MiB  skipped {row['skipped']} resets {row['resets']}",
                flush=True,
            )
    finally:
        for load in reversed(loads):
            load.stop()
        with contextlib.suppress(OSError, TimeoutError, json.JSONDecodeError):
            await control.call(op="stop")
        relay.join(15)
        if relay.is_alive():
            relay.kill()
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    xs = [float(r["viewers"]) for r in rows]
    return {
        "cpu_per_viewer_pct": slope(xs, [r["relay_cpu_pct"] for r in rows]),
        "sys_per_viewer_pct": slope(xs, [r["relay_sys_pct"] for r in rows]),
        "rss_per_viewer_kib": 1024 * slope(xs, [r["rss_mib"] for r in rows]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,2,4,8,16,32,64")
    parser.add_argument("--naive-counts", default="1,2,4,8")
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write rows here")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the relay's event loop (python app.py uses uvloop when it is installed)",
    )
    args = parser.parse_args()
    counts = [int(x) for x in args.counts.split(",") if x]
    naive_counts = [int(x) for x in args.naive_counts.split(",") if x]
    print(
        f"machine: {os.cpu_count()} CPUs; relay pinned to CPU 0 ({args.loop}), load to CPU 1",
        flush=True,
    )
    rows = asyncio.run(run_mode("forward", counts, args.window, args.windows, args.loop))
    naive = (
        asyncio.run(run_mode("naive", naive_counts, args.window, args.windows, args.loop))
        if naive_counts
        else []
    )
    fwd = summarize(rows)
    print(
        f"forward: {fwd['cpu_per_viewer_pct']:.3f}% of a core per viewer "
        f"(system {fwd['sys_per_viewer_pct']:.3f}%), "
        f"{fwd['rss_per_viewer_kib']:.0f} KiB per viewer"
    )
    if naive:
        nv = summarize(naive)
        print(
            f"naive:   {nv['cpu_per_viewer_pct']:.3f}% of a core per viewer, "
            f"{nv['rss_per_viewer_kib']:.0f} KiB per viewer; "
            f"ratio naive/forward {nv['cpu_per_viewer_pct'] / fwd['cpu_per_viewer_pct']:.1f}x"
        )
    if args.json:
        args.json.write_text(json.dumps({"forward": rows, "naive": naive}, indent=2))


if __name__ == "__main__":
    main()
