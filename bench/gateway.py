"""Gateway overhead: the same chat requests at 1, 16 and 64 concurrent clients, in one run,

(a) direct to a stub provider that answers instantly;
(b) through the fastest minimal pass-through proxy (raw ASGI + one pooled client; httpx and aiohttp
    are both measured and the faster is the floor for a Python hop on this machine);
(c) through flywheel's gateway with an A/B route (two arms on the stub), a fallback, a rate limit
    high enough never to trigger, and its per-request accounting;
(d) through LiteLLM's proxy (litellm[proxy]==1.108.7, in its own venv under bench/.venvs/, no
    database, telemetry off, local cost map, a master key);
(e) through `mlflow gateway start` on the basic file (its own venv reusing this one's packages
    plus MLflow's gateway extras).

Added latency = p50 (p99) through a hop − the same percentile direct, at the same concurrency.
Server CPU per request = the hop's process-tree CPU time / requests. Writes bench/results/gateway.json.

    .venv/bin/python bench/gateway.py          # BENCH_QUICK=1: fewer requests
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._util import free_port, pct, print_table, tree_cpu_s, write_result

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / "bench" / ".venvs"
QUICK = os.environ.get("BENCH_QUICK") == "1"
LEVELS = {1: 300 if QUICK else 1500, 16: 600 if QUICK else 3000, 64: 600 if QUICK else 3000}
BODY = b'{"model": "chat", "messages": [{"role": "user", "content": "What port does the gateway use?"}], "max_tokens": 16}'
LITELLM = "1.108.7"
ROUNDS = 3 if QUICK else 5


def _wait(url: str, timeout: float = 120, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def _spawn(
    cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
    )


def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop a target and everything it started (`mlflow gateway start` runs gunicorn as a child
    that a plain terminate() leaves running)."""
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    for q in reversed(tree):
        with contextlib.suppress(psutil.Error):
            q.terminate()
    _, alive = psutil.wait_procs(tree, timeout=10)
    for q in alive:
        with contextlib.suppress(psutil.Error):
            q.kill()


async def _load(
    url: str, concurrency: int, n: int, headers: dict[str, str]
) -> tuple[list[float], int, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    left = n
    conn = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(
        connector=conn, headers={"content-type": "application/json", **headers}
    ) as s:

        async def worker() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                try:
                    async with s.post(url, data=BODY) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - t0


def run_once(
    url: str, concurrency: int, n: int, proc: subprocess.Popen[bytes] | None, headers: dict[str, str]
) -> dict[str, Any]:
    cpu0 = tree_cpu_s(proc.pid) if proc else 0.0
    lat, errors, secs = asyncio.run(_load(url, concurrency, n, headers))
    return {
        "lat": lat,
        "errors": errors,
        "secs": secs,
        "cpu": (tree_cpu_s(proc.pid) - cpu0) if proc else None,
    }


def _rss_mb(proc: subprocess.Popen[bytes] | None) -> float | None:
    if proc is None:
        return None
    try:
        p = psutil.Process(proc.pid)
        return round(sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20, 1)
    except psutil.Error:
        return None


def measure_all(targets: dict[str, dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Every target at every level, in interleaved rounds (these machines are noisy: a target
    measured alone in a slow minute would look slow). Per target and level: the median of the
    rounds' p50s, the p99 of all its latencies, requests/s and CPU per request over all rounds."""
    out: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in targets}
    for c, n in LEVELS.items():
        for t in targets.values():  # warm-up: connections, caches
            asyncio.run(_load(t["url"], c, min(100, n), t.get("headers", {})))
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        rss_before = {name: _rss_mb(t.get("proc")) for name, t in targets.items()}
        for _ in range(ROUNDS):
            for name, t in targets.items():
                share = max(20, int(n * t.get("share", 1.0)) // ROUNDS)
                runs[name].append(run_once(t["url"], c, share, t.get("proc"), t.get("headers", {})))
        for name, rs in runs.items():
            lat = [x for r in rs for x in r["lat"]]
            total = sum(len(r["lat"]) for r in rs)
            cpu = [r["cpu"] for r in rs if r["cpu"] is not None]
            out[name][c] = {
                "p50_ms": round(statistics.median(pct(r["lat"], 50) for r in rs) * 1000, 3),
                "p99_ms": round(pct(lat, 99) * 1000, 3),
                "rps": round(total / sum(r["secs"] for r in rs), 1),
                "errors": sum(r["errors"] for r in rs),
                "cpu_ms_per_request": round(sum(cpu) / total * 1000, 3) if cpu else None,
                "rounds_p50_ms": [round(pct(r["lat"], 50) * 1000, 3) for r in rs],
                "rss_mb_before": rss_before[name],
                "rss_mb_after": _rss_mb(targets[name].get("proc")),
            }
            r = out[name][c]
            print(
                f"  {name:<16} c={c:<3} p50 {r['p50_ms']:.2f} ms (rounds {r['rounds_p50_ms']})  p99 {r['p99_ms']:.2f} ms  {r['rps']:.0f} req/s  errors {r['errors']}",
                flush=True,
            )
    return out


def _litellm_venv() -> Path | None:
    py = VENVS / "litellm" / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / "litellm")], check=True)
    ok = subprocess.run(
        [
            str(py),
            "-c",
            f"import litellm, importlib.metadata as m; assert m.version('litellm') == '{LITELLM}'",
        ],
        capture_output=True,
    )
    if ok.returncode:
        print(f"installing litellm[proxy]=={LITELLM} into {VENVS / 'litellm'} (once)…", flush=True)
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM}"],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            print("  LiteLLM did not install:", r.stderr[-500:])
            return None
    return py


def _mlflow_venv() -> Path | None:
    """A venv that sees this one's packages (a .pth file) plus MLflow's gateway extras."""
    root = VENVS / "mlflow-gateway"
    py = root / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        site = next((root / "lib").glob("python3*/site-packages"))
        ours = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
        (site / "zz_flywheel.pth").write_text(str(ours) + "\n" + str(ROOT / "src") + "\n")
    if subprocess.run(
        [str(py), "-c", "import slowapi, tiktoken, watchfiles"], capture_output=True
    ).returncode:
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "slowapi<1", "tiktoken<1", "watchfiles<2"],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            print("  MLflow's gateway extras did not install:", r.stderr[-500:])
            return None
    return py


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[subprocess.Popen[bytes]] = []
    targets: dict[str, dict[str, Any]] = {}
    chat = "/v1/chat/completions"
    try:
        stub_port = free_port()
        procs.append(_spawn([sys.executable, "-m", "bench._gateway_apps", "stub", str(stub_port)]))
        stub_url = f"http://127.0.0.1:{stub_port}"
        _wait(stub_url + "/")
        targets["direct"] = {"url": stub_url + chat}

        for kind in ("httpx", "aiohttp"):
            port = free_port()
            p = _spawn([sys.executable, "-m", "bench._gateway_apps", f"proxy-{kind}", str(port), stub_url])
            procs.append(p)
            _wait(f"http://127.0.0.1:{port}/")
            # httpx is ~4x slower here: fewer of its requests keep the run short
            targets[f"minimal_{kind}"] = {
                "url": f"http://127.0.0.1:{port}{chat}",
                "proc": p,
                "share": 0.3 if kind == "httpx" else 1.0,
            }

        cfg = {
            "endpoints": [
                {
                    "name": n,
                    "endpoint_type": "llm/v1/chat",
                    "model": {
                        "provider": "openai",
                        "name": "stub",
                        "config": {"openai_api_key": "none", "openai_api_base": stub_url + "/v1"},
                    },
                    "retries": 1,
                }
                for n in ("arm-a", "arm-b")
            ],
            "routes": [
                {
                    "name": "chat",
                    "task_type": "llm/v1/chat",
                    "destinations": [
                        {"name": "arm-a", "traffic_percentage": 70},
                        {"name": "arm-b", "traffic_percentage": 30},
                    ],
                    "fallbacks": ["arm-a", "arm-b"],
                    "limit": {"calls": 10_000_000, "renewal_period": "minute"},
                }
            ],
        }
        gw_cfg = tmp / "gateway.yaml"
        gw_cfg.write_text(yaml.safe_dump(cfg))
        port = free_port()
        gw = _spawn(
            [sys.executable, "-m", "flywheel.gateway", "--config", str(gw_cfg), "--port", str(port)],
            log=tmp / "gw.log",
        )
        procs.append(gw)
        _wait(f"http://127.0.0.1:{port}/health")
        gw_url = f"http://127.0.0.1:{port}"
        targets["flywheel"] = {"url": gw_url + chat, "proc": gw}

        py = _litellm_venv()
        if py:
            lcfg = tmp / "litellm.yaml"
            lcfg.write_text(
                yaml.safe_dump(
                    {
                        "model_list": [
                            {
                                "model_name": "chat",
                                "litellm_params": {
                                    "model": "openai/stub",
                                    "api_base": stub_url + "/v1",
                                    "api_key": "none",
                                },
                            }
                        ],
                        "litellm_settings": {"telemetry": False, "drop_params": True},
                        "general_settings": {"master_key": "sk-bench-1234"},
                    }
                )
            )
            port = free_port()
            env = {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False",
                "LITELLM_LOG": "ERROR",
                "DISABLE_ADMIN_UI": "True",
                "NO_DOCS": "True",
            }
            lp = _spawn(
                [
                    str(py.parent / "litellm"),
                    "--config",
                    str(lcfg),
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                    "--num_workers",
                    "1",
                ],
                env=env,
                log=tmp / "litellm.log",
            )
            procs.append(lp)
            try:
                _wait(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
                targets["litellm"] = {
                    "url": f"http://127.0.0.1:{port}{chat}",
                    "proc": lp,
                    "headers": {"Authorization": "Bearer sk-bench-1234"},
                    "share": 0.1,  # ~40 req/s: a tenth of the requests keeps the run within minutes
                }
            except RuntimeError as exc:
                print("  LiteLLM did not start:", exc, (tmp / "litellm.log").read_text()[-800:])

        py = _mlflow_venv()
        if py:
            mcfg = tmp / "mlflow-gateway.yaml"
            basic = yaml.safe_load((ROOT / "gateway" / "gateway_config.yaml").read_text())
            basic["endpoints"][0]["model"]["config"]["openai_api_base"] = stub_url + "/v1"
            basic["endpoints"][0].pop("limit", None)
            basic["endpoints"][0]["name"] = "chat"  # the request's model names the endpoint
            basic["routes"] = []
            mcfg.write_text(yaml.safe_dump(basic))
            port = free_port()
            mp = _spawn(
                [
                    str(py),
                    "-m",
                    "mlflow",
                    "gateway",
                    "start",
                    "--config-path",
                    str(mcfg),
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                    "--workers",
                    "1",
                ],
                env={"MLFLOW_DISABLE_TELEMETRY": "true"},
                log=tmp / "mlflow.log",
            )
            procs.append(mp)
            try:
                _wait(f"http://127.0.0.1:{port}/health", timeout=180)
                targets["mlflow"] = {"url": f"http://127.0.0.1:{port}{chat}", "proc": mp, "share": 0.3}
            except RuntimeError as exc:
                print("  mlflow gateway did not start:", exc, (tmp / "mlflow.log").read_text()[-800:])

        print(f"targets: {', '.join(targets)}; {ROUNDS} interleaved rounds per level", flush=True)
        results: dict[str, Any] = measure_all(targets)
        results["flywheel_stats"] = httpx.get(gw_url + "/stats").json()["arms"]
    finally:
        for p in procs:
            _stop_tree(p)

    direct = results["direct"]
    minimal_key = min(("minimal_httpx", "minimal_aiohttp"), key=lambda k: results[k][16]["p50_ms"])

    def added(name: str, c: int, q: str = "p50_ms") -> float | None:
        if name not in results:
            return None
        return round(results[name][c][q] - direct[c][q], 3)

    fw16, min16, lite16 = added("flywheel", 16), added(minimal_key, 16), added("litellm", 16)
    summary = {
        "added_p50_ms_c1": added("flywheel", 1),
        "added_p50_ms_c16": fw16,
        "added_p99_ms_c16": added("flywheel", 16, "p99_ms"),
        "ratio_vs_minimal_c16": round(fw16 / min16, 2) if fw16 is not None and min16 else None,
        "ratio_vs_litellm_c16": round(fw16 / lite16, 3) if fw16 is not None and lite16 else None,
        "litellm_added_p50_ms_c16": lite16,
        "mlflow_added_p50_ms_c16": added("mlflow", 16),
        "minimal_proxy": minimal_key.removeprefix("minimal_"),
        "minimal_added_p50_ms_c1": added(minimal_key, 1),
        "minimal_added_p50_ms_c16": min16,
        "flywheel_added_p50_ms_c64": added("flywheel", 64),
        "flywheel_cpu_ms_per_request_c16": results["flywheel"][16]["cpu_ms_per_request"],
        "errors": sum(v[c]["errors"] for k, v in results.items() if k != "flywheel_stats" for c in v),
        "rounds": ROUNDS,
        # memory under load: the gateway's RSS before the first level and after the last
        "flywheel_rss_mb_start": results["flywheel"][min(LEVELS)]["rss_mb_before"],
        "flywheel_rss_mb_end": results["flywheel"][max(LEVELS)]["rss_mb_after"],
    }
    rows = []
    for name in ("direct", "minimal_httpx", "minimal_aiohttp", "flywheel", "litellm", "mlflow"):
        if name in results:
            for c in LEVELS:
                r = results[name][c]
                rows.append(
                    (
                        name,
                        str(c),
                        f"{r['p50_ms']:.2f}",
                        f"{r['p99_ms']:.2f}",
                        f"{added(name, c) or 0:+.2f}",
                        f"{r['rps']:.0f}",
                        str(r["cpu_ms_per_request"] or "-"),
                        str(r["errors"]),
                    )
                )
    print_table(
        "gateway overhead",
        rows,
        ("target", "clients", "p50 ms", "p99 ms", "added p50", "req/s", "cpu ms/req", "errors"),
    )
    print("\nsummary:", summary)
    write_result("gateway", summary, {"levels": LEVELS, "results": results, "litellm_version": LITELLM})


if __name__ == "__main__":
    main()
