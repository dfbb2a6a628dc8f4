"""Benchmark: REFI-QDA import and export (issue 8), on the real samples and at study scale.

Run from the repository root with ``.venv/bin/python bench/refi.py``. It uses a fresh SQLite
file in a temporary folder (migrated first), or the database in DATABASE_URL when given
(then it leaves its projects, ``bench-refi-*``, there).

1. Reading (``refi.read_file``: zip checks, safe parse, schema validation, position
   conversion) of every real sample in shared/data/refi.
2. Importing each NVivo sample (``services.import_refi``) with the ``item`` rule, and the
   smallest one with the default rule too (one clause per line, ~15,000 clauses).
3. Study scale: a generated .qdpx of BENCH_SOURCES Chinese policies (~5,000 characters,
   ~21 articles each, some 𠀀) with BENCH_SELECTIONS coded selections by 3 coders is imported,
   exported, imported again into an empty project and exported again; the two exports must
   be byte-identical.

The issue sets no speed target; the script prints every figure, and exits with status 1 if
a count is wrong or the round trip differs.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT.parent / "shared" / "data" / "refi"
SOURCES = int(os.environ.get("BENCH_SOURCES", "1000"))
SELECTIONS = int(os.environ.get("BENCH_SELECTIONS", "20000"))
PHRASES = (
    "市人民政府应当加强智慧城市建设的统筹规划，",
    "推进政务数据共享和公共数据开放，",
    "支持人才培养和引进，完善激励机制，",
    "加快新型基础设施建设𠀀，提升城市治理数字化水平，",
    "鼓励企业参与智慧应用示范项目，",
    "财政部门应当安排专项资金予以支持。",
)
CN = "零一二三四五六七八九"


def numeral(n: int) -> str:
    if n < 10:
        return CN[n]
    return ("" if n < 20 else CN[n // 10]) + "十" + (CN[n % 10] if n % 10 else "")


def generated_qdpx(rng: random.Random) -> tuple[bytes, int]:
    """A .qdpx as another tool would write it (code points, LF), and its selection count."""
    users = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3)]
    codes = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(18)]
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<Project xmlns="urn:QDA-XML:project:1.0" name="Bench" origin="Bench 1">',
        "<Users>" + "".join(f'<User guid="{u}" name="bench coder {i}"/>' for i, u in enumerate(users)) + "</Users>",
        "<CodeBook><Codes>",
    ]
    for root in range(3):
        parts.append(f'<Code guid="{codes[root]}" name="Tree {root}" isCodable="true">')
        parts += [f'<Code guid="{codes[3 + root * 5 + i]}" name="Sub {i}" isCodable="true"/>' for i in range(5)]
        parts.append("</Code>")
    parts.append("</Codes></CodeBook><Sources>")
    files = {}
    per_source = max(SELECTIONS // SOURCES, 1)
    selections = 0
    for number in range(1, SOURCES + 1):
        lines = [f"某市智慧城市促进条例（第{number}号）"]
        while sum(len(line) + 1 for line in lines) < 5000:
            body = "".join(rng.choice(PHRASES) for _ in range(rng.randint(2, 9)))
            lines.append(f"第{numeral(len(lines))}条　{body}")
        text = "\n".join(lines) + "\n"
        guid = str(uuid.UUID(int=rng.getrandbits(128)))
        files[f"sources/{guid}.txt"] = text.encode()
        parts.append(f'<TextSource guid="{guid}" name={quoteattr(lines[0])} plainTextPath="internal://{guid}.txt">')
        for _ in range(per_source):
            line = rng.randint(1, len(lines) - 1)
            start = sum(len(x) + 1 for x in lines[:line]) + 4
            end = start + rng.randint(5, max(6, len(lines[line]) - 5))
            parts.append(
                f'<PlainTextSelection guid="{uuid.UUID(int=rng.getrandbits(128))}" startPosition="{start}" '
                f'endPosition="{end}"><Coding guid="{uuid.UUID(int=rng.getrandbits(128))}" '
                f'creatingUser="{rng.choice(users)}"><CodeRef targetGUID="{rng.choice(codes)}"/></Coding>'
                "</PlainTextSelection>"
            )
            selections += 1
        parts.append("</TextSource>")
    parts.append("</Sources></Project>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.qde", "\n".join(parts))
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue(), selections


def timed(label: str, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"  {label}: {time.perf_counter() - started:.2f} s")
    return result


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-refi-"))
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "policycoder.settings")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from coding import refi, services
    from coding.models import Clause, Reference

    call_command("migrate", verbosity=0)
    print(f"Database: {connection.vendor} ({connection.settings_dict['NAME']})")
    failures = []
    stamp = int(time.time())

    print("1. Reading the real samples (safety checks, schema validation, positions)")
    refi._schema("project")  # built once per process (about a second); not part of a read
    for path in sorted(SAMPLES.glob("*.q*")):
        data = path.read_bytes()
        parsed = timed(f"{path.name} ({len(data) / 1024:.0f} KiB)", refi.read_file, data, path.name)
        print(f"     {len(parsed.sources)} sources, {parsed.selection_count} selections")

    print("2. Importing the NVivo samples")
    runs = [(name, "item") for name in sorted(p.name for p in SAMPLES.glob("DEpt-*.qdpx"))]
    runs.append(("DEpt-metagenom_oltas.qdpx", None))
    for i, (name, rule) in enumerate(runs):
        parsed = refi.read_file((SAMPLES / name).read_bytes(), name)
        project, report = timed(
            f"{name}, rule {rule or 'default (paragraphs)'}",
            services.import_refi,
            actor=None,
            parsed=parsed,
            slug=f"bench-refi-{stamp}-{i}",
            rule=rule,
            file_name=name,
        )
        print(
            f"     {report.clauses_created:,} clauses, {report.references_created} references, "
            f"{len(report.unplaced)} not placed"
        )
        if report.unplaced or report.selections_placed != parsed.selection_count:
            failures.append(f"{name}: not every selection placed")
        out = io.BytesIO()
        timed("     export", refi.export_project, project, out)

    print(f"3. Study scale: {SOURCES:,} sources, {SELECTIONS:,} selections, 3 coders")
    data, selections = generated_qdpx(random.Random(8))
    print(f"  generated .qdpx: {len(data) / 1024 / 1024:.1f} MB")
    parsed = timed("read", refi.read_file, data, "bench.qdpx")
    first_project, report = timed(
        "import", services.import_refi, actor=None, parsed=parsed, slug=f"bench-refi-{stamp}-big", file_name="b"
    )
    clauses = Clause.objects.filter(policy__project=first_project).count()
    references = Reference.objects.filter(policy__project=first_project).count()
    print(f"     {clauses:,} clauses, {references:,} references ({report.duplicates} duplicates skipped)")
    if report.selections_placed != selections or references + report.duplicates != selections:
        failures.append("study scale: counts differ")
    first = io.BytesIO()
    timed("export", refi.export_project, first_project, first)
    print(f"     {len(first.getvalue()) / 1024 / 1024:.1f} MB")
    parsed = timed("read our export", refi.read_file, first.getvalue(), "again.qdpx")
    second_project, _ = timed(
        "import into an empty project",
        services.import_refi,
        actor=None,
        parsed=parsed,
        slug=f"bench-refi-{stamp}-again",
    )
    second = io.BytesIO()
    timed("export again", refi.export_project, second_project, second)
    identical = first.getvalue() == second.getvalue()
    print(f"  round trip gives the same file: {identical}")
    if not identical:
        failures.append("round trip differs")

    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
