"""Digest throughput: match, build and send every subscriber's digest into a local SMTP sink.

    .venv/bin/python bench/digests.py --subscribers 100000 --papers 2000   # the full size
    .venv/bin/python bench/digests.py                                      # a quick 5,000

Generates papers and subscribers the way bench/matching.py does (seed vocabulary), stores them in
a fresh database (SQLite in a temporary folder, or --database-url), then runs the real code path
with `--workers` processes, as Celery workers would: matching chunks (`match_chunk`), the
dispatcher (`dispatch_due`), and sending chunks (`send_delivery_chunk`: claim, build, send over
one SMTP connection per chunk, record). The SMTP sink is postfix's `smtp-sink` (C; Debian package
postfix, which bin/install-system-packages adds) or, with `--sink python` or when smtp-sink is
missing, aiosmtpd in a separate process.

Two baselines are measured in the same run, on a sample of the same subscribers and the same sink,
each three times, keeping its best: (a) the plain way: per subscriber, query its papers,
`render_to_string` the templates and `EmailMultiAlternatives.send()` (a new connection per
message); (b) the ceiling: one identical prebuilt message sent over one reused connection,
pipelined as the workers send. `digests_per_s` counts dispatch + build + send (what the baselines
do); the matching time is printed beside it. The last line is machine-readable.

The sink offers PIPELINING, as production mail servers do (`--no-pipelining` to refuse it). The C
sink answers in microseconds, so the workers run at their normal priority; the Python sink costs
about as much CPU per message as a worker, and with it the sending workers run at nice 10 (the
`--worker-nice` default for that sink): in production the mail server has its own machine, here
it shares the two cores, and without it the workers would mostly measure how long the kernel keeps
the sink waiting behind their time slices.
"""

import argparse
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import bench_environment, fresh_postgres_database  # noqa: E402


def run_sink(port_out, received, pipelining: bool = True) -> None:
    """An aiosmtpd server that counts what it accepts and keeps nothing; it offers PIPELINING, as
    production mail servers do, unless told not to."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Counting:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if pipelining:
                responses.insert(-1, "250-PIPELINING")
            return responses

        async def handle_DATA(self, server, session, envelope):
            with received.get_lock():
                received.value += 1
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Counting(), hostname="sink"), "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


class PythonSink:
    """aiosmtpd in a forked process; `value` is the count of messages it accepted."""

    name = "python (aiosmtpd)"

    def __init__(self, ctx, pipelining: bool) -> None:
        port_in, port_out = ctx.Pipe(duplex=False)
        self._received = ctx.Value("l", 0)
        self._process = ctx.Process(target=run_sink, args=(port_out, self._received, pipelining), daemon=True)
        self._process.start()
        self.port = port_in.recv()

    @property
    def value(self) -> int:
        return self._received.value

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def stop(self) -> None:
        self._process.terminate()


class CSink:
    """postfix's smtp-sink, which accepts and discards; `value` is the message count it prints
    (`-c`: "sess=.. quit=.. mesg=N" after each message, flushed at once)."""

    name = "c (postfix smtp-sink)"

    def __init__(self, program: str, pipelining: bool, folder: str) -> None:
        with socket.socket() as probe:  # a free port, handed to smtp-sink
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._counts = Path(folder) / "smtp-sink.out"
        options = ["-c", "-u", "nobody"] if os.getuid() == 0 else ["-c"]
        options += [] if pipelining else ["-p"]
        with open(self._counts, "wb") as out:
            self._process = subprocess.Popen(
                [program, *options, f"127.0.0.1:{self.port}", "1024"], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"smtp-sink did not start: {self._counts.read_text()}") from None
                time.sleep(0.05)
        self._base = 0
        self._base = self.value  # the probe connections above counted no message, but be exact
        self.pid = self._process.pid

    @property
    def value(self) -> int:
        with open(self._counts, "rb") as out:
            out.seek(max(0, out.seek(0, os.SEEK_END) - 80))
            tail = out.read().decode("ascii", "replace")
        found = tail.rsplit("mesg=", 1)
        return (int(found[1].split()[0]) if len(found) == 2 else 0) - self._base

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()


def settled(sink, expected: int) -> int:
    """The sink's count once it reaches `expected` (smtp-sink may print it just after answering),
    or after a second."""
    deadline = time.monotonic() + 1
    while sink.value < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return sink.value


def start_sink(kind: str, ctx, pipelining: bool, folder: str):
    """The sink asked for; the Python one, said aloud, when smtp-sink is not installed."""
    if kind == "c":
        program = shutil.which("smtp-sink") or (
            "/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None
        )
        if program:
            return CSink(program, pipelining, folder)
        print(
            "smtp-sink not found (Debian package postfix: run bin/install-system-packages as root); "
            "falling back to the Python sink, with the workers niced",
            flush=True,
        )
    return PythonSink(ctx, pipelining)


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (not idle, not waiting for the disk), from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run_seconds(pid: int | None) -> float:
    """The CPU time a process of this machine has had, to the nanosecond (/proc/<pid>/schedstat);
    0 when it is unknown or gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_backend_pid: int | None = None


def backend_cpu_seconds() -> float:
    """CPU time of this process's PostgreSQL backend so far (the server runs on this machine)."""
    global _backend_pid
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0.0
    if _backend_pid is None or connection.connection is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            _backend_pid = cursor.fetchone()[0]
    return run_seconds(_backend_pid)


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="processes, like Celery workers")
    parser.add_argument("--sample", type=int, default=300, help="subscribers for each baseline")
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL bench database to drop and create (e.g. postgres://postgres@127.0.0.1:5432/paperboy_bench); "
        "default: a fresh SQLite file in a temporary folder",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the --database-url of a previous run (subscribers, papers, matches) "
        "and only dispatch and send again",
    )
    parser.add_argument(
        "--sink",
        choices=("c", "python"),
        default="c",
        help="the SMTP sink: postfix's smtp-sink (default; the Python one when it is missing) or aiosmtpd",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        help="niceness of the sending workers (default 0 with the C sink, 10 with the Python sink): the sink "
        "stands in for a mail server, which has a machine of its own in production; the Python sink needs the "
        "kernel to serve it first, else its answers wait behind the workers' time slices",
    )
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="the sink does not offer PIPELINING (RFC 2920): four round trips per message",
    )
    args = parser.parse_args()

    ctx = multiprocessing.get_context("fork")
    folder = tempfile.mkdtemp(prefix="paperboy-bench-")
    sink = start_sink(args.sink, ctx, not args.no_pipelining, folder)
    if args.worker_nice is None:
        args.worker_nice = 0 if isinstance(sink, CSink) else 10
    print(f"sink: {sink.name}; sending workers at nice {args.worker_nice}", flush=True)
    if args.database_url.startswith("postgres") and not args.reuse:
        fresh_postgres_database(args.database_url)
    os.environ.update(bench_environment(args.database_url, folder=folder, smtp_port=sink.port))
    os.environ.pop("REDIS_URL", None)
    try:
        run(args, ctx, sink)
    finally:
        sink.stop()


def run(args, ctx, received) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    warm_up()
    from digest.chunks import chunked
    from digest.delivery.dispatch import dispatch_due
    from digest.matching.runs import start_match_run
    from digest.models import Delivery

    if args.reuse:
        match_seconds = unsend_everything()
    else:
        populate(args)
        connections.close_all()  # each forked worker opens its own connection
        started = time.perf_counter()
        plan = start_match_run(all_papers=True)
        connections.close_all()
        candidates = 0
        matched: dict[int, tuple[float, float]] = {}  # per worker: its CPU and its backend's so far
        with ctx.Pool(args.workers) as pool:
            for created, worker, cpu in pool.imap_unordered(_match, [(plan.run_id, chunk) for chunk in plan.chunks]):
                candidates += created
                matched[worker] = max(matched.get(worker, cpu), cpu)
        match_seconds = time.perf_counter() - started
        per = 1000 / max(args.subscribers, 1)
        print(
            f"match: {candidates} candidates for {args.subscribers} subscribers in {match_seconds:.1f} s; "
            f"CPU per subscriber: workers {sum(worker for worker, _ in matched.values()) * per:.2f} ms, "
            f"their database backends {sum(backend for _, backend in matched.values()) * per:.2f} ms",
            flush=True,
        )

    started = time.perf_counter()
    ids = dispatch_due(queue=False)
    dispatch_seconds = time.perf_counter() - started
    connections.close_all()
    chunks = list(chunked(ids, settings.DIGEST_CHUNK_SIZE))
    cpu_before, sink_before = busy_cpu_seconds(), run_seconds(received.pid)
    started = time.perf_counter()
    sent = empty = 0
    spent: dict[int, tuple[float, float]] = {}  # per worker: its CPU and its backend's so far
    with ctx.Pool(args.workers, initializer=os.nice, initargs=(args.worker_nice,)) as pool:
        for done, (chunk_sent, chunk_empty, worker_peak, worker, cpu) in enumerate(
            pool.imap_unordered(_send, chunks), 1
        ):
            sent += chunk_sent
            empty += chunk_empty
            spent[worker] = max(spent.get(worker, cpu), cpu)
            if done % max(1, len(chunks) // 10) == 0:
                elapsed = time.perf_counter() - started
                print(
                    f"  sent {sent} of {len(ids)} in {elapsed:.0f} s ({sent / elapsed:.0f}/s; "
                    f"{worker_peak:.0f} MB in that worker)",
                    flush=True,
                )
    send_seconds = time.perf_counter() - started
    cpu_seconds, sink_seconds = busy_cpu_seconds() - cpu_before, run_seconds(received.pid) - sink_before
    workers_seconds = sum(worker for worker, _ in spent.values())
    backends_seconds = sum(backend for _, backend in spent.values())
    assert settled(received, sent) == sent, (received.value, sent)
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == sent
    digests_per_s = sent / (dispatch_seconds + send_seconds)
    print(
        f"dispatch {len(ids)} deliveries in {dispatch_seconds:.1f} s; build and send {sent} digests "
        f"({empty} empty, skipped) in {send_seconds:.1f} s with {args.workers} workers",
        flush=True,
    )
    print(
        f"while sending, the machine's {os.cpu_count()} cores were "
        f"{cpu_seconds / send_seconds / os.cpu_count():.0%} busy: "
        f"{cpu_seconds / max(sent, 1) * 1000:.2f} ms of CPU per digest (workers, sink and database)",
        flush=True,
    )
    per = 1000 / max(sent, 1)
    print(
        f"CPU per digest of this run's own processes (other load not counted): workers "
        f"{workers_seconds * per:.2f} ms, their database backends {backends_seconds * per:.2f} ms, "
        f"sink {sink_seconds * per:.2f} ms",
        flush=True,
    )

    sample_ids = list(
        Delivery.objects.filter(status=Delivery.Status.SENT).order_by("id").values_list("id", flat=True)[: args.sample]
    )
    # Each baseline's best of three runs: a hiccup of the machine must not flatter the ratios.
    plain_per_s = max(plain_way(sample_ids, received) for _ in range(3))
    ceiling_per_s = max(ceiling(sample_ids[0], len(sample_ids) * 4, received) for _ in range(3))
    whole = match_seconds + dispatch_seconds + send_seconds
    peak = max(peak_mb(), peak_mb(resource.RUSAGE_CHILDREN))
    if not args.reuse:
        print(f"whole path (match + dispatch + build + send): {whole:.1f} s for {args.subscribers} subscribers")
    print(
        f"digests {digests_per_s:,.0f}/s; plain way {plain_per_s:,.0f}/s (x{digests_per_s / plain_per_s:.1f}); "
        f"ceiling {ceiling_per_s:,.0f}/s (x{digests_per_s / ceiling_per_s:.2f}); peak memory {peak:.0f} MB per process"
    )
    print(
        f"subscribers={len(ids)} digests_per_s={digests_per_s:.0f} plain_per_s={plain_per_s:.0f} "
        f"ceiling_per_s={ceiling_per_s:.0f} peak_mb={peak:.0f} "
        f"sink={'c' if isinstance(received, CSink) else 'python'} "
        f"worker_nice={args.worker_nice} worker_cpu_ms={workers_seconds * per:.2f} "
        f"database_cpu_ms={backends_seconds * per:.2f} sink_cpu_ms={sink_seconds * per:.2f}"
    )


def warm_up() -> None:
    """Import and build what sending touches lazily (URLs, templates) before forking workers.

    Forked workers then share it, and never import a file that changed since the run began.
    """
    from django.urls import get_resolver

    from mail.rendering import jinja_environment

    get_resolver().url_patterns  # noqa: B018 - imports every view module
    for name in ("emails/digest-subject.txt", "emails/digest.txt", "emails/digest.html"):
        jinja_environment().get_template(name)  # the HTML's CSS is inlined here, once


def unsend_everything() -> float:
    """--reuse: forget the previous run's deliveries; its matches stay. Returns 0 match seconds."""
    from django.db import connection
    from django.utils import timezone

    from subscribers.models import Subscriber

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM digest_delivery")  # and with them the ranges of candidates they took
    Subscriber.objects.update(next_delivery_at=timezone.now() - timedelta(minutes=1))
    if connection.vendor == "postgresql":
        # Each reset leaves millions of dead rows (and autovacuum may be off, as on this machine):
        # without a VACUUM every rerun would be slower than the one before. ANALYZE too, as the end
        # of a match run does.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) digest_candidate, digest_delivery, subscribers_subscriber")
    print(
        f"reusing the subscribers and matches of a previous run: {Subscriber.objects.count()} subscribers", flush=True
    )
    return 0.0


def populate(args) -> None:
    """Papers, topics and due subscribers with generated preferences (not timed)."""
    from django.utils import timezone

    from bench.matching import Generator, store_pseudo_vectors
    from digest.models import Paper
    from subscribers.models import Subscriber, Topic

    generator = Generator(args.seed)
    topics = {}
    for position, (name, description, keywords) in enumerate(generator.topics):
        topics[name] = Topic.objects.create(
            slug=f"topic-{position}", name=name, description=description, keywords=keywords
        )
    papers = []
    for number in range(1, args.papers + 1):
        doc = generator.paper(number)
        arxiv_id = f"2611.{number:05d}"
        papers.append(
            Paper(
                arxiv_id=arxiv_id,
                guid=arxiv_id,
                title=doc.title,
                abstract=doc.abstract,
                authors=list(doc.authors),
                categories=list(doc.categories),
                primary_category=doc.categories[0],
                published=doc.published,
                url=f"https://arxiv.org/abs/{arxiv_id}",
                pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
                upvotes=doc.upvotes,
            )
        )
    Paper.objects.bulk_create(papers, batch_size=1000)
    due = timezone.now() - timedelta(minutes=1)
    Through = Subscriber.topics.through
    for first in range(0, args.subscribers, 5000):
        rows, chosen = [], []
        for number in range(first, min(first + 5000, args.subscribers)):
            prefs = generator.preferences()
            rows.append(
                Subscriber(
                    email=f"reader{number}@example.org",
                    status=Subscriber.Status.ACTIVE,
                    next_delivery_at=due,
                    keywords=prefs["keywords"],
                    interests=prefs.get("interests", ""),
                    authors=prefs.get("authors", []),
                    categories=prefs.get("categories", []),
                    category_mode=prefs.get("category_mode", "boost"),
                )
            )
            chosen.append([topics[name] for name, _, _ in prefs.get("topics", [])])
        created = Subscriber.objects.bulk_create(rows)
        Through.objects.bulk_create(
            Through(subscriber_id=s.id, topic_id=t.id) for s, ts in zip(created, chosen, strict=True) for t in ts
        )
    # As ingestion and the saved interests would have: runs read vectors, they do not encode them.
    store_pseudo_vectors(
        [(paper.title, paper.abstract) for paper in papers],
        list(Subscriber.objects.exclude(interests="").values_list("interests", flat=True)),
    )
    print(f"stored {args.papers} papers and {args.subscribers} subscribers", flush=True)


def _match(job) -> tuple[int, int, tuple[float, float]]:
    """Match a chunk; returns the candidates created, this worker's pid, and the CPU time it and its
    database backend have had so far."""
    from digest.matching.runs import match_chunk

    run_id, chunk = job
    return match_chunk(run_id, chunk), os.getpid(), (own_cpu_seconds(), backend_cpu_seconds())


def _send(chunk) -> tuple[int, int, float, int, tuple[float, float]]:
    """Send a chunk; returns its counts, this worker's peak memory, its pid, and the CPU time it
    and its database backend have had so far."""
    from digest.delivery.sending import send_delivery_chunk

    result = send_delivery_chunk(chunk)
    return result.sent, result.empty, peak_mb(), os.getpid(), (own_cpu_seconds(), backend_cpu_seconds())


def plain_way(delivery_ids: list[int], received) -> float:
    """Per subscriber: its papers, render the templates and inline the whole page, send() on a new
    connection."""
    import jinja2
    from django.conf import settings
    from django.core.mail import EmailMultiAlternatives

    from digest.delivery.digest_email import build_digest_context, clear_card_cache
    from digest.models import Delivery
    from mail.rendering import inline_css
    from subscribers.emails import personal_links

    # The same templates, loaded as they are written: nothing inlined beforehand.
    plain = jinja2.Environment(
        loader=jinja2.FileSystemLoader(settings.BASE_DIR / "templates" / "jinja2"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    plain.globals["once"] = lambda *key, caller: caller()  # every card rendered for every subscriber

    def render_to_string(name: str, context: dict) -> str:
        return plain.get_template(name).render(context)

    before = received.value
    started = time.perf_counter()
    for delivery_id in delivery_ids:
        clear_card_cache()  # the plain way renders every paper for every subscriber
        delivery = Delivery.objects.select_related("subscriber").get(id=delivery_id)
        subscriber = delivery.subscriber
        candidates = list(delivery.candidates.select_related("paper").order_by("-score")[: delivery.paper_count])
        context = {
            "SITE_NAME": settings.SITE_NAME,
            "SITE_URL": settings.SITE_URL,
            "subscriber": subscriber,
            **build_digest_context(subscriber, candidates, delivery.more_count, delivery),
            **personal_links(subscriber),
        }
        message = EmailMultiAlternatives(
            subject=" ".join(render_to_string("emails/digest-subject.txt", context).split()),
            body=render_to_string("emails/digest.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[subscriber.email],
        )
        message.attach_alternative(inline_css(render_to_string("emails/digest.html", context)), "text/html")
        message.send()
    seconds = time.perf_counter() - started
    assert settled(received, before + len(delivery_ids)) - before == len(delivery_ids)
    return len(delivery_ids) / seconds


def ceiling(delivery_id: int, count: int, received) -> float:
    """One prebuilt digest sent `count` times over one reused connection, the way the workers send
    (each message's envelope written with the previous message's data), with nothing to build."""
    from django.core.mail import get_connection

    from digest.delivery.digest_email import build_digest_message
    from digest.models import Delivery
    from mail.streams import message_stream

    delivery = Delivery.objects.select_related("subscriber").get(id=delivery_id)
    candidates = list(delivery.candidates.select_related("paper").order_by("-score")[: delivery.paper_count])
    connection = get_connection()
    message = build_digest_message(delivery.subscriber, candidates, delivery.more_count, delivery=delivery)
    data = message.message_bytes()  # what the workers send, built once, outside the timing
    stream = message_stream(connection)
    before = received.value
    connection.open()
    started = time.perf_counter()
    previous, upcoming = None, stream.begin(message.from_email, message.to[0])
    for number in range(count):
        stream.flush()
        if previous is not None:
            stream.verdict(previous)
        stream.accept(upcoming)
        stream.send_bytes(upcoming, data)
        previous, upcoming = upcoming, (stream.begin(message.from_email, message.to[0]) if number + 1 < count else None)
    stream.flush()
    stream.verdict(previous)
    seconds = time.perf_counter() - started
    connection.close()
    assert settled(received, before + count) - before == count
    return count / seconds


if __name__ == "__main__":
    main()
