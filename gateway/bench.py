"""`sq bench`: run the benchmark modules in tests/bench and report each figure beside its in-run baseline."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "tests" / "bench"


def available() -> list[str]:
    """Names of the benchmarks in this checkout (tests/bench/bench_<name>.py)."""
    return sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))


def run_one(name: str) -> dict[str, Any]:
    """Run one benchmark module and return its JSON document."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.bench.harness import machine

    module = importlib.import_module(f"tests.bench.bench_{name}")
    started = time.time()
    results = module.run()
    return {
        "name": name,
        "results": [row.as_dict() for row in results],
        "machine": machine(),
        "seconds": round(time.time() - started, 2),
    }


def markdown_table(documents: list[dict[str, Any]]) -> str:
    """The README's benchmark table: every metric with its baseline and ratio."""
    lines = ["| benchmark | metric | value | unit | baseline (same run) | baseline value | ratio |",
             "| --- | --- | ---: | --- | --- | ---: | ---: |"]
    for document in documents:
        for row in document["results"]:
            lines.append(f"| {document['name']} | {row['metric']} | {row['value']:,.4g} | {row['unit']} | "
                         f"{row['baseline']} | {row['baseline_value']:,.4g} | {row['ratio']:.2f} |")
    return "\n".join(lines)


def run_benchmarks(name: str, *, as_json: bool, table: bool, out_dir: Path) -> int:
    """Run `name` (or every benchmark for 'all'), write JSON files to out_dir, print JSON and/or a table."""
    if not BENCH_DIR.is_dir():
        print(f"sq bench: the benchmark suite lives in a source checkout ({BENCH_DIR} is missing)",
              file=sys.stderr)
        return 2
    names = available() if name == "all" else [name]
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"sq bench: unknown benchmark {unknown[0]!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    documents = []
    for each in names:
        document = run_one(each)
        documents.append(document)
        (out_dir / f"{each}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        if as_json:
            print(json.dumps(document), flush=True)
    if table or not as_json:
        text = markdown_table(documents)
        (out_dir / "TABLE.md").write_text(text + "\n", encoding="utf-8")
        print(text)
    return 0
