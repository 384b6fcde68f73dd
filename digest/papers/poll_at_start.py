"""The poll `make run` does as it starts, so that a first digest on a machine with a network is
made of today's papers rather than waiting an hour for the schedule.

Each feed's host is tried first, all at once and briefly: offline, the feeds of a host that does
not answer are not fetched (arXiv's three seconds between requests would make a newcomer wait for
nothing), and the outcome is one line.
"""

import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from requests.utils import get_environ_proxies

from digest.models import Feed
from digest.papers.ingestion import IngestReport, ingest_all, sync_feeds_from_settings

# Long enough for a slow network to answer, short enough that offline costs nobody a wait.
CONNECT_TIMEOUT_SECONDS = 3.0


@dataclass
class StartPoll:
    polled: list[IngestReport] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # hosts, as host:port

    @property
    def new_papers(self) -> int:
        return sum(report.counts.new for report in self.polled)

    def line(self) -> str:
        """What happened, in one line."""
        failed = sum(report.failed for report in self.polled)
        if not self.polled and not self.unreachable:
            return "No feeds to poll (FEEDS is empty): the digests use the seed papers."
        if not self.polled:
            hosts = ", ".join(self.unreachable)
            return f"Offline: could not reach {hosts}; the digests use the seed papers until a poll succeeds."
        feeds = f"{len(self.polled)} feed{'s' if len(self.polled) != 1 else ''}"
        line = f"Polled {feeds}: {self.new_papers} new papers"
        if failed:
            line += f", {failed} failed (the admin's Feeds page says why)"
        if self.unreachable:
            line += f"; could not reach {', '.join(self.unreachable)}"
        return line + "."


def host_of(url: str) -> str | None:
    """`host:port` a fetch of the address connects to first (its proxy's, when the environment
    names one); None for a local file, which needs no network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    proxy = get_environ_proxies(url).get(parts.scheme)
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def answers(host: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    name, _, port = host.rpartition(":")
    try:
        with socket.create_connection((name, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def unreachable_hosts(urls: Iterable[str], timeout: float = CONNECT_TIMEOUT_SECONDS) -> set[str]:
    hosts = sorted({host for host in map(host_of, urls) if host})
    if not hosts:
        return set()
    with ThreadPoolExecutor(max_workers=min(len(hosts), 8)) as pool:
        answered = pool.map(lambda host: answers(host, timeout), hosts)
        return {host for host, up in zip(hosts, answered, strict=True) if not up}


def poll_at_start(timeout: float = CONNECT_TIMEOUT_SECONDS) -> StartPoll:
    """Poll every enabled feed (FEEDS included) whose host answers; the others wait for the schedule."""
    sync_feeds_from_settings()
    feeds = list(Feed.objects.filter(enabled=True).order_by("url"))
    down = unreachable_hosts((feed.url for feed in feeds), timeout)
    reachable = [feed for feed in feeds if host_of(feed.url) not in down]
    return StartPoll(polled=ingest_all(reachable), unreachable=sorted(down))
