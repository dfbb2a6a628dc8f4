"""Benchmark: import 10,000 generated policies of about 5,000 characters from one CSV.

Run from the repository root with ``.venv/bin/python bench/import_policies.py``. It uses a
fresh SQLite file in a temporary folder (migrated first), or the database in DATABASE_URL
when given (then it creates its own project, ``bench-import-<time>``, and leaves it there).

The CSV has the study's columns (number, title, potency level, departments, dates,
jurisdiction, text); every text is Chinese: a title line, then ~20 articles 第X条 of mixed
length, ~5,000 characters in all, so the ``article`` rule cuts ~21 clauses per policy.
The import goes through ``import_policies`` — the management command — exactly as an
admin would run it, and the wall-clock time of reading, checking and writing is printed
with the rows written, the number of SQL statements and the process's CPU time (on a
busy machine wall-clock time includes waiting for a core). Target: under 60 s on 2 cores.
Exits with status 1 when the wall-clock target is missed or the counts are wrong.
"""

from __future__ import annotations

import csv
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POLICIES = int(os.environ.get("BENCH_POLICIES", "10000"))
TARGET_SECONDS = 60.0
CN_DIGITS = "零一二三四五六七八九"
PHRASES = (
    "市人民政府应当加强智慧城市建设的统筹规划，",
    "推进政务数据共享和公共数据开放，",
    "支持人才培养和引进，完善激励机制，",
    "加快新型基础设施建设，提升城市治理数字化水平，",
    "鼓励企业参与智慧应用示范项目，",
    "依法保护个人信息和数据安全，",
    "财政部门应当安排专项资金予以支持。",
    "具体办法由市人民政府另行制定。",
)


def numeral(n: int) -> str:
    if n < 10:
        return CN_DIGITS[n]
    if n < 20:
        return "十" + (CN_DIGITS[n % 10] if n % 10 else "")
    return CN_DIGITS[n // 10] + "十" + (CN_DIGITS[n % 10] if n % 10 else "")


def policy_text(rng: random.Random, number: int) -> str:
    lines = [f"某市智慧城市促进条例（第{number}号）", "第一章　总则"]
    length = sum(len(line) + 1 for line in lines)
    article = 0
    while length < 5000:
        article += 1
        body = "".join(rng.choice(PHRASES) for _ in range(rng.randint(2, 9)))
        line = f"第{numeral(article)}条　{body}"
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines) + "\n"


def build_csv(path: Path, count: int) -> tuple[int, int]:
    rng = random.Random(20240501)
    characters = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["编号", "标题", "效力级别", "发布部门", "发布日期", "实施日期", "jurisdiction", "正文"])
        for number in range(1, count + 1):
            text = policy_text(rng, number)
            characters += len(text)
            year = rng.randint(2008, 2023)
            writer.writerow(
                [
                    number,
                    f"某市智慧城市促进条例（第{number}号）",
                    rng.choice(["地方性法规", "地方政府规章", "地方规范性文件"]),
                    "市人民代表大会常务委员会；市人民政府",
                    f"{year}.{rng.randint(1, 12)}.{rng.randint(1, 28)}",
                    str(year + 1) if number % 7 == 0 else f"{year + 1}.{rng.randint(1, 12)}",
                    rng.choice(["Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Central"]),
                    text,
                ]
            )
    return path.stat().st_size, characters


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "policycoder.settings")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from coding import services
    from coding.models import Clause, Event, Policy

    call_command("migrate", verbosity=0)
    csv_path = workdir / "policies.csv"
    started = time.perf_counter()
    size, characters = build_csv(csv_path, POLICIES)
    print(
        f"Generated {POLICIES:,} policies, {characters / POLICIES:,.0f} characters each on average, "
        f"{size / 1024 / 1024:.1f} MB of CSV in {time.perf_counter() - started:.1f} s"
    )
    print(f"Database: {connection.vendor} ({connection.settings_dict['NAME']})")

    slug = f"bench-import-{int(time.time())}"
    project = services.create_project(actor=None, slug=slug, name="Import benchmark")
    out, err = io.StringIO(), io.StringIO()
    started, cpu_started = time.perf_counter(), time.process_time()
    with CaptureQueriesContext(connection) as queries:
        call_command(
            "import_policies",
            str(csv_path),
            project=slug,
            max_size_mb=size // (1024 * 1024) + 1,
            stdout=out,
            stderr=err,
        )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(out.getvalue().strip())

    policies = Policy.objects.filter(project=project).count()
    clauses = Clause.objects.filter(policy__project=project).count()
    events = Event.objects.filter(project=project, action="policy.create").count()
    print(
        f"Wrote {policies:,} policies, {clauses:,} clauses, {events:,} audit events "
        f"with {len(queries):,} SQL statements"
    )
    print(
        f"Import time: {elapsed:.1f} s ({POLICIES / elapsed:,.0f} policies/s); target < {TARGET_SECONDS:.0f} s: "
        f"{'met' if elapsed < TARGET_SECONDS else 'MISSED'}"
    )
    # On a shared machine wall-clock time includes waiting for the CPU; with SQLite the database
    # runs inside this process, so its CPU time is what an idle 2-core machine would take.
    where = "this process and SQLite" if connection.vendor == "sqlite" else "this process (not the database server)"
    print(f"CPU time of {where}: {cpu:.1f} s; load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    ok = policies == POLICIES and events == POLICIES and clauses >= POLICIES * 20
    if not ok:
        print("Counts are wrong.")
    return 0 if ok and elapsed < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
