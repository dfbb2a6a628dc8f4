"""Benchmark: the coders' workbench (issue 4) against its speed targets.

Run from the repository root with PostgreSQL on 127.0.0.1:5432:

    .venv/bin/python bench/workbench.py [--keep] [--reuse] [--skip-browser] [--workers N]

It creates a throwaway database ``bench_workbench`` (dropped at the end unless ``--keep``),
fills it with a synthetic study (a 300-clause, ~60,000-character policy coded with 2,000
references by one coder, plus a clean policy per concurrent coder), and measures:

1. server time to render that policy page (calling the WSGI application gunicorn runs, in
   this process: the whole request through middleware and PostgreSQL, without HTTP), for
   the coder and for a supervisor, and the side-panel partial that the page and every save
   fetch after; median and p95 of repeated requests;
2. server time to save a reference (in-process, a new passage each time), median and p95,
   and its query count with 1 and 3 references already on the clause (must be equal);
3. 8 concurrent coders saving over HTTP against gunicorn + PostgreSQL on a free loopback
   port (bounded loops, a distinct passage per save), saves per second, then counts the
   stored references: every save must be there;
4. in Chromium (Playwright), time from navigation start to the workbench being usable on
   that policy (highlights drawn, the page's script ready), then selecting and coding a
   passage, median of several navigations.

Targets (from the issue): render < 150 ms median, save < 20 ms median with a constant
number of queries, >= 100 saves/s with none lost, usable < 1 s. The script prints every
figure and exits with status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = "bench_workbench"
PG = "postgres://postgres@127.0.0.1:5432"
CLAUSES = 300
CLAUSE_CHARS = 199  # + "第N条　" ≈ 60,000 characters
REFERENCES = 2_000
CODERS = 8
SAVES_PER_CODER = 150
RENDER_REPEATS = 30
SAVE_REPEATS = 100
BROWSER_REPEATS = 5
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多"
    "定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由"
    "其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意"
    "建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统"
    "接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导"
    "器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示"
    "议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布"
    "复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选"
    "标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞"
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True, capture_output=True)


# --- data ------------------------------------------------------------------------------------


def policy_text(rng: random.Random) -> str:
    lines = []
    for n in range(1, CLAUSES + 1):
        body = "".join(rng.choice(COMMON) for _ in range(CLAUSE_CHARS))
        if n % 25 == 0:
            body = body[:50] + "𠀀" + body[51:]  # characters outside the BMP occur in real texts
        lines.append(f"第{n}条　{body}。")
    return "\n".join(lines) + "\n"


def build_study(services, models) -> dict:
    from django.contrib.auth import get_user_model

    rng = random.Random(20260501)
    User = get_user_model()
    admin = User.objects.create_superuser("bench_admin", password="bench-admin-pw")
    project = services.create_project(actor=admin, slug="bench", name="Workbench bench")
    coders = []
    for i in range(1, CODERS + 1):
        user = User.objects.create_user(f"bench_coder{i}", password="pw")
        services.set_membership(actor=admin, project=project, user=user, role=models.Role.CODER)
        coders.append(user)
    supervisor = User.objects.create_user("bench_supervisor", password="pw")
    services.set_membership(actor=admin, project=project, user=supervisor, role=models.Role.SUPERVISOR)
    nodes = []
    for t in range(3):
        tree = services.add_node(actor=admin, project=project, name=f"Tree {t + 1}", colour="#8fbcef")
        nodes.append(tree)
        for s in range(5):
            nodes.append(services.add_node(actor=admin, project=project, parent=tree, name=f"Sub {t + 1}.{s + 1}"))
    dense = services.create_policy(actor=admin, project=project, title="Dense", text=policy_text(rng))
    clauses = list(models.Clause.objects.filter(policy=dense).order_by("start"))
    assert len(clauses) == CLAUSES, len(clauses)
    seen, references = set(), []
    while len(references) < REFERENCES:
        clause = rng.choice(clauses)
        start = rng.randrange(clause.start, clause.end - 1)
        end = min(clause.end, start + rng.randint(4, 60))
        node = rng.choice(nodes)
        if (clause.pk, node.pk, start, end) in seen:
            continue
        seen.add((clause.pk, node.pk, start, end))
        references.append(
            models.Reference(
                policy=dense,
                clause=clause,
                node=node,
                coder=coders[0],
                created_by=coders[0],
                start=start,
                end=end,
                text=dense.text[start:end],
            )
        )
    models.Reference.objects.bulk_create(references)
    # One clean policy per concurrent coder, so their saves measure coding, not rendering 2,000 references.
    clean = [
        services.create_policy(actor=admin, project=project, title=f"Clean {i}", text=policy_text(rng))
        for i in range(CODERS)
    ]
    return {
        "project": project,
        "coders": coders,
        "supervisor": supervisor,
        "dense": dense,
        "clean": clean,
        "nodes": nodes,
    }


def load_study(models) -> dict:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    project = models.Project.objects.get(slug="bench")
    policies = models.Policy.objects.filter(project=project)
    return {
        "project": project,
        "coders": [users.get(username=f"bench_coder{i}") for i in range(1, CODERS + 1)],
        "supervisor": users.get(username="bench_supervisor"),
        "dense": policies.get(title="Dense"),
        "clean": [policies.get(title=f"Clean {i}") for i in range(CODERS)],
        "nodes": list(models.Node.objects.filter(project=project).order_by("id")),
    }


def passages(policy, models, count: int, rng: random.Random) -> list[dict]:
    """``count`` distinct passages of ``policy`` as the page's JavaScript would send them."""
    clauses = list(models.Clause.objects.filter(policy=policy).order_by("start"))
    out, seen = [], set()
    while len(out) < count:
        clause = rng.choice(clauses)
        text = policy.text[clause.start : clause.end]
        start = rng.randrange(0, len(text) - 2)
        end = min(len(text), start + rng.randint(3, 40))
        if (
            "𠀀" in text[start - 1 : start + 1]
            or "𠀀" in text[end - 1 : end + 1]
            or (clause.number, start, end) in seen
        ):
            continue
        seen.add((clause.number, start, end))
        utf16 = [len(text[:i].encode("utf-16-le")) // 2 for i in (start, end)]
        out.append(
            {
                "start_clause": clause.number,
                "start_offset": utf16[0],
                "end_clause": clause.number,
                "end_offset": utf16[1],
                "quote": text[start:end],
            }
        )
    return out


# --- 1 and 2: in-process server time -----------------------------------------------------------


class WsgiClient:
    """Calls the WSGI application gunicorn runs, in this process, as one logged-in user.

    Unlike Django's test client this adds no instrumentation (the test client copies every
    template context for its assertions), so the time measured is the server's own."""

    def __init__(self, app, user):
        self.app = app
        self.cookies = {"sessionid": session_cookie(user)}

    def request(self, method: str, path: str, data: dict | None = None, htmx: bool = False):
        body = urlencode(data or {}).encode()
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        if htmx:
            environ["HTTP_HX_REQUEST"] = "true"
        if method == "POST":
            environ["HTTP_X_CSRFTOKEN"] = self.cookies.get("csrftoken", "")
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = int(status.split()[0]), headers

        content = b"".join(self.app(environ, start_response))
        for name, value in answer["headers"]:
            if name.lower() == "set-cookie":
                key, _, rest = value.strip().partition("=")
                self.cookies[key] = rest.split(";")[0]
        return answer["status"], answer["headers"], content


def environment() -> dict:
    """What the machine gives: the same figures make sense only against these."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (x int)")
    commits = []
    for _ in range(30):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_commit_probe VALUES (1)")
        commits.append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_commit_probe")
    started = time.process_time()
    for i in range(1_000_000):
        abs(i)
    return {"commit": statistics.median(commits), "call_ns": (time.process_time() - started) * 1000}


def timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def server_times(study, models) -> dict:
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    app = get_wsgi_application()
    results = {}
    page = f"/projects/bench/policies/{study['dense'].number}/"
    panel = page + "panel/"
    for who, user in [("coder", study["coders"][0]), ("supervisor", study["supervisor"])]:
        client = WsgiClient(app, user)
        for name, address, htmx in [("page", page, False), ("panel", panel, True)]:

            def get(address=address, htmx=htmx, client=client):
                status, _, content = client.request("GET", address, htmx=htmx)
                assert status == 200, status
                return content

            get()  # warm: template compiled, connection open
            times = timed(get, RENDER_REPEATS)
            with CaptureQueriesContext(connection) as ctx:
                size = len(get())
            results[f"{name}_{who}"] = {"times": times, "queries": len(ctx), "bytes": size}

    coder = study["coders"][1]
    client = WsgiClient(app, coder)
    policy = study["clean"][0]
    client.request("GET", f"/projects/bench/policies/{policy.number}/")  # the page sets the CSRF cookie
    node = study["nodes"][4]
    add = f"/projects/bench/policies/{policy.number}/references/add/"
    todo = iter(passages(policy, models, SAVE_REPEATS + 10, random.Random(time.time())))

    def save(data: dict | None = None) -> None:
        status, _, content = client.request("POST", add, (data or next(todo)) | {"node": node.pk}, htmx=True)
        assert status == 200, content[:300]

    for _ in range(5):
        save()  # warm
    results["save"] = {"times": timed(save, SAVE_REPEATS)}

    # Query count of a save with 1 and with 3 references already on its clause.
    clause = models.Clause.objects.filter(policy=policy).exclude(references__isnull=False).order_by("start").first()
    text = policy.text[clause.start : clause.end]

    def already_coded(offset: int) -> None:
        models.Reference.objects.create(
            policy=policy,
            clause=clause,
            node=study["nodes"][10],
            coder=coder,
            created_by=coder,
            start=clause.start + offset,
            end=clause.start + offset + 5,
            text=text[offset : offset + 5],
        )

    def queries_to_save(offset: int) -> int:
        data = {
            "start_clause": clause.number,
            "start_offset": offset,
            "end_clause": clause.number,
            "end_offset": offset + 5,
            "quote": text[offset : offset + 5],
        }
        with CaptureQueriesContext(connection) as ctx:
            save(data)
        return len(ctx)

    already_coded(100)
    counts = [queries_to_save(10)]  # the clause had 1 reference
    already_coded(110)
    counts.append(queries_to_save(20))  # the clause had 3
    results["save_queries"] = counts
    return results


# --- 3: concurrent coders over HTTP ---------------------------------------------------------------


def start_gunicorn(port: int, env: dict, workers: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "policycoder.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--preload",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline, last = time.time() + 120, ""
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            if response.status == 200:
                return process
            last = response.read().decode()
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"gunicorn did not start: {last}")


def session_cookie(user) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Coder(threading.Thread):
    """One coder saving passages one after another over a kept-alive connection."""

    def __init__(self, port: int, user, policy, node_ids: list[int], work: list[dict], barrier: threading.Barrier):
        super().__init__()
        self.port, self.work, self.barrier, self.node_ids = port, work, barrier, node_ids
        self.path = f"/projects/bench/policies/{policy.number}/references/add/"
        self.page = f"/projects/bench/policies/{policy.number}/"
        self.session = session_cookie(user)
        self.statuses: list[int] = []
        self.times: list[float] = []

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", self.page, headers={"Cookie": f"sessionid={self.session}"})
        response = connection.getresponse()
        response.read()
        cookies = [v.split(";")[0] for k, v in response.getheaders() if k.lower() == "set-cookie"]
        csrf = next(c.split("=", 1)[1] for c in cookies if c.startswith("csrftoken="))
        headers = {
            "Cookie": f"sessionid={self.session}; csrftoken={csrf}",
            "X-CSRFToken": csrf,
            "HX-Request": "true",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self.barrier.wait()
        for i, data in enumerate(self.work):
            body = urlencode(data | {"node": self.node_ids[i % len(self.node_ids)]})
            started = time.perf_counter()
            connection.request("POST", self.path, body=body.encode(), headers=headers)
            response = connection.getresponse()
            response.read()
            self.times.append(time.perf_counter() - started)
            self.statuses.append(response.status)
        connection.close()


def concurrent_saves(study, models, port: int) -> dict:
    rng = random.Random(time.time())
    node_ids = [n.pk for n in study["nodes"]]
    barrier = threading.Barrier(CODERS + 1)
    coders = [
        Coder(port, user, policy, node_ids, passages(policy, models, SAVES_PER_CODER, rng), barrier)
        for user, policy in zip(study["coders"], study["clean"], strict=True)
    ]
    before = models.Reference.objects.filter(policy__in=study["clean"]).count()
    for coder in coders:
        coder.start()
    barrier.wait()
    started = time.perf_counter()
    for coder in coders:
        coder.join()
    elapsed = time.perf_counter() - started
    statuses = [s for c in coders for s in c.statuses]
    stored = models.Reference.objects.filter(policy__in=study["clean"]).count() - before
    return {
        "saves": len(statuses),
        "ok": sum(1 for s in statuses if s == 200),
        "stored": stored,
        "elapsed": elapsed,
        "per_second": len(statuses) / elapsed,
        "times": [t for c in coders for t in c.times],
    }


# --- 4: in Chromium ------------------------------------------------------------------------------------


def browser_usable(study, port: int) -> dict:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    address = f"/projects/bench/policies/{study['dense'].number}/"
    ready, contentful, coded = [], [], []
    session = session_cookie(study["coders"][0])  # before Playwright's event loop starts
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        context = browser.new_context(base_url=base, viewport={"width": 1400, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
        page = context.new_page()
        page.goto(address)  # warm the browser (fonts, caches) once
        for i in range(BROWSER_REPEATS):
            page.goto(address, wait_until="commit")
            page.wait_for_selector("#workbench[data-ready=true]", state="attached")
            marks = page.evaluate(
                "() => [performance.getEntriesByName('pc:workbench-ready')[0].startTime,"
                " (performance.getEntriesByName('first-contentful-paint')[0] || {startTime: NaN}).startTime,"
                " document.querySelectorAll('mark[data-refs]').length]"
            )
            assert marks[2] > 1000, marks  # the 2,000 references are drawn
            ready.append(marks[0] / 1000)
            contentful.append(marks[1] / 1000)
            # Then select a passage and code it: time until its highlight is drawn.
            label = f"1-{20 + i}"
            page.evaluate(
                """(label) => { const el = document.getElementById('text-' + label);
                   el.scrollIntoView({block: 'center'}); }""",
                label,
            )
            started = time.perf_counter()
            page.evaluate(
                """(label) => { const el = document.getElementById('text-' + label);
                  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT); const t = walker.nextNode();
                  const r = document.createRange(); r.setStart(t, 0); r.setEnd(t, 3);
                  getSelection().removeAllRanges(); getSelection().addRange(r); el.focus(); }""",
                label,
            )
            page.keyboard.press("Enter")
            page.keyboard.type("Sub 2.2")
            page.keyboard.press("Enter")
            page.wait_for_function(
                """(label) => Array.from(document.querySelectorAll('#text-' + label + ' mark'))
                   .some(m => m.textContent.startsWith('第'))""",
                arg=label,
            )
            coded.append(time.perf_counter() - started)
        browser.close()
    return {"ready": ready, "fcp": contentful, "coded": coded}


# --- main --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the bench_workbench database afterwards")
    parser.add_argument("--skip-browser", action="store_true", help="skip the Chromium measurement")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1, help="gunicorn workers")
    parser.add_argument("--reuse", action="store_true", help="reuse the study kept by an earlier --keep run")
    args = parser.parse_args()

    if not args.reuse:
        psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
        psql(f"CREATE DATABASE {DB_NAME}")
    static_root = tempfile.mkdtemp(prefix="bench_workbench_static_")
    env = os.environ | {
        "DATABASE_URL": f"{PG}/{DB_NAME}",
        "SECRET_KEY": "bench-workbench-not-secret",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "STATIC_ROOT": static_root,
        "DJANGO_SETTINGS_MODULE": "policycoder.settings",
        "LOG_LEVEL": "ERROR",
    }
    os.environ.update(env)
    gunicorn = None
    failures = []
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from coding import models, services

        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        started = time.perf_counter()
        study = load_study(models) if args.reuse else build_study(services, models)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have done on a database in use
        dense = study["dense"]
        print(
            f"Synthetic study: policy of {dense.clauses.count()} clauses, {len(dense.text):,} characters, "
            f"{models.Reference.objects.filter(policy=dense).count():,} references "
            f"(built in {time.perf_counter() - started:.1f} s). PostgreSQL {DB_NAME}; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)."
        )

        env_figures = environment()
        print(
            f"Environment: an INSERT + durable COMMIT takes {ms(env_figures['commit'])} median in this PostgreSQL; "
            f"a trivial Python call {env_figures['call_ns']:.0f} ns."
        )

        results = server_times(study, models)
        print("\n1. Server time to render the policy page (in-process, PostgreSQL), median / p95:")
        for key, label in [
            ("page_coder", "page, coder (2,000 own references)"),
            ("page_supervisor", "page, supervisor (all layers)"),
            ("panel_coder", "side-panel partial, coder"),
        ]:
            r = results[key]
            print(
                f"   {label:<38} {ms(statistics.median(r['times']))} / {ms(percentile(r['times'], 0.95))}"
                f"   ({r['queries']} queries, {r['bytes'] / 1024:.0f} KiB)"
            )
        render = statistics.median(results["page_coder"]["times"])
        if render >= 0.150:
            failures.append(f"render median {ms(render)} >= 150 ms")

        save = results["save"]["times"]
        print("\n2. Server time to save a reference (in-process), median / p95:")
        print(f"   {ms(statistics.median(save))} / {ms(percentile(save, 0.95))} over {len(save)} saves")
        print(f"   queries per save with 1 and 3 references on the clause: {results['save_queries']}")
        if statistics.median(save) >= 0.020:
            failures.append(f"save median {ms(statistics.median(save))} >= 20 ms")
        if len(set(results["save_queries"])) != 1:
            failures.append(f"save query count varies: {results['save_queries']}")

        port = free_port()
        gunicorn = start_gunicorn(port, env, args.workers)
        load = concurrent_saves(study, models, port)
        print(f"\n3. {CODERS} concurrent coders against gunicorn ({args.workers} sync workers) + PostgreSQL:")
        print(
            f"   {load['saves']} saves in {load['elapsed']:.2f} s = {load['per_second']:.0f} saves/s; "
            f"{load['ok']} answered 200, {load['stored']} references stored; "
            f"latency median {ms(statistics.median(load['times']))}, p95 {ms(percentile(load['times'], 0.95))}"
        )
        if load["per_second"] < 100:
            failures.append(f"{load['per_second']:.0f} saves/s < 100")
        if not load["ok"] == load["stored"] == load["saves"]:
            failures.append("not every save was stored")

        if not args.skip_browser:
            usable = browser_usable(study, port)
            print(f"\n4. Chromium, the 2,000-reference policy, {BROWSER_REPEATS} navigations (median / max):")
            print(
                f"   usable (script ready, highlights drawn) {ms(statistics.median(usable['ready']))} / "
                f"{ms(max(usable['ready']))} after navigation start; first contentful paint "
                f"{ms(statistics.median(usable['fcp']))}"
            )
            print(
                f"   then select + code a passage (keyboard, picker, save, redraw): "
                f"{ms(statistics.median(usable['coded']))} / {ms(max(usable['coded']))}"
            )
            if statistics.median(usable["ready"]) >= 1.0:
                failures.append("not usable within 1 s")
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        shutil.rmtree(static_root, ignore_errors=True)
        if not args.keep and not args.reuse:
            psql(f"DROP DATABASE IF EXISTS {DB_NAME}")

    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")
    print("Targets:", "all met." if not failures else "MISSED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
