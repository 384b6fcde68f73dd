"""A typical digest for the email tests: real titles and abstracts from the seed trending page."""

import base64
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from digest.delivery.picks import Pick, load_picks
from digest.models import Candidate, Delivery, Paper
from subscribers.models import Subscriber, Topic
from tests.support import ROOT

SEED_PAGE = ROOT / "seeds" / "trending-papers-page.txt"
PUBLISHED = datetime(2026, 3, 17, tzinfo=UTC)
# When the sending tests' digests are due.
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

AUTHORS = [
    ["Dogyun Park", "Sihyeon Kim", "Sojin Lee", "Hyunwoo J. Kim"],
    ["Ahmed Ghorbel", "Wassim Hamidouche", "Luce Morin"],
    ["Shishira R Maiya", "Sharath Girish", "Max Ehrlich", "Hanyu Wang", "Kwot Sin Lee", "Patrick Poirson"],
    ["Sahel Iqbal", "Mahyar Fazlyab"],
    ["Xueqian Li", "Jhony Kaesemodel Pontes", "Simon Lucey"],
    ["Hao Chen", "Matthew Gwilliam", "Ser-Nam Lim", "Abhinav Shrivastava"],
    ["Qinsi Wang", "Saeed Vahidian", "Hancheng Ye", "Jianyang Gu", "Jianyi Zhang", "Yiran Chen"],
    ["Jack Merullo", "Carsten Eickhoff", "Ellie Pavlick"],
]
CATEGORIES = [
    ["cs.CV", "cs.LG"],
    ["eess.IV", "cs.CV"],
    ["cs.CV"],
    ["cs.LG", "math.OC"],
    ["cs.CV"],
    ["cs.CV"],
    ["cs.CL"],
    ["cs.CL", "cs.LG"],
]


def seed_papers() -> list[tuple[str, str]]:
    """(title, abstract) pairs of the seed page, in page order."""
    blocks = [b.strip() for b in SEED_PAGE.read_text().split("\n\n")]
    start = blocks.index("Mar 17") + 1
    body = blocks[start:]
    return [(body[i], body[i + 1]) for i in range(0, len(body) - 1, 2) if len(body[i + 1]) > 200]


def make_paper(index: int, title: str, abstract: str, **fields) -> Paper:
    arxiv_id = f"2403.{10000 + index:05d}"
    values = {
        "arxiv_id": arxiv_id,
        "guid": arxiv_id,
        "title": title,
        "abstract": abstract,
        "authors": AUTHORS[index % len(AUTHORS)],
        "categories": CATEGORIES[index % len(CATEGORIES)],
        "primary_category": CATEGORIES[index % len(CATEGORIES)][0],
        "published": PUBLISHED,
        "url": f"https://arxiv.org/abs/{arxiv_id}",
        "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}",
        "code_url": f"https://github.com/paperboy-samples/{arxiv_id}" if index % 3 == 0 else "",
        "upvotes": [42, 17, 0, 5, 0, 28, 61, 9][index % 8],
    }
    values.update(fields)
    return Paper.objects.create(**values)


def make_subscriber(email: str = "ada@example.org", **fields) -> Subscriber:
    values = {"status": Subscriber.Status.ACTIVE, "keywords": '"neural representation", interpretability, -medical'}
    values.update(fields)
    subscriber = Subscriber.objects.create(email=email, **values)
    topic, _ = Topic.objects.get_or_create(
        slug="implicit-neural-representations",
        defaults={"name": "Implicit neural representations", "description": "Signals stored as neural networks"},
    )
    subscriber.topics.add(topic)
    return subscriber


def reason_for(title: str) -> str:
    if "Language Model" in title or "Circuit" in title:
        return "matches your keyword 'interpretability'"
    if "Implicit" in title or "NeRV" in title.replace("NERV", "NeRV"):
        return "matches your topic Implicit neural representations"
    return "similar to your interest"


def make_digest(count: int = 6, more: int = 3, subscriber: Subscriber | None = None):
    """A subscriber, their digest's picks (best first, loaded as sending loads them) and its Delivery row."""
    subscriber = subscriber or make_subscriber()
    delivery = Delivery.objects.create(
        subscriber=subscriber,
        period="2026-03-17",
        scheduled_for=datetime(2026, 3, 17, 8, tzinfo=UTC),
        paper_count=count,
        more_count=more,
    )
    candidates = []
    for index, (title, abstract) in enumerate(seed_papers()[:count]):
        paper = make_paper(index, title, abstract)
        candidates.append(
            Candidate.objects.create(
                subscriber=subscriber, paper=paper, score=1.0 - index / 20, reason=reason_for(title)
            )
        )
    hold(delivery, candidates)
    return subscriber, load_picks(delivery.candidates.order_by("-score", "id")), delivery


def hold(delivery: Delivery, candidates: list[Candidate]) -> Delivery:
    """Give the delivery these candidates (the last its subscriber got) as a claim would: its range,
    grown to take them should it have one."""
    ids = [candidate.id for candidate in candidates]
    if delivery.holds_any:
        ids += [delivery.candidates_after + 1, delivery.candidates_through]
    delivery.candidates_after, delivery.candidates_through = min(ids) - 1, max(ids)
    delivery.save(update_fields=["candidates_after", "candidates_through"])
    return delivery


def as_picks(candidates: list[Candidate]) -> list[Pick]:
    """Candidates made in a test, loaded as a digest loads them, in the same order."""
    order = {candidate.pk: rank for rank, candidate in enumerate(candidates)}
    loaded = load_picks(Candidate.objects.filter(pk__in=order))
    return sorted(loaded, key=lambda pick: order[pick.id])


def with_reason(picks: list[Pick], reason: str) -> list[Pick]:
    return [replace(pick, reason=reason) for pick in picks]


def queued_digest(email: str, papers, count: int = 3, **fields) -> Delivery:
    """A subscriber with `count` waiting candidates and their queued Delivery."""
    subscriber = make_subscriber(email, **fields)
    for rank, paper in enumerate(papers[:count]):
        Candidate.objects.create(
            subscriber=subscriber, paper=paper, score=1.0 - rank / 10, reason=reason_for(paper.title)
        )
    return Delivery.objects.create(subscriber=subscriber, period="2026-11-26", scheduled_for=NOW)


def fresh(delivery: Delivery) -> Delivery:
    return Delivery.objects.get(id=delivery.id)


def make_dkim_key(folder: Path) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key (PEM file) and the DNS TXT record that publishes its public half."""
    private = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public_der = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
