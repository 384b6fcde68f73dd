"""The admin of both apps' models.

The subscriber pages show each subscriber's digests and a preview of the next one, which only
the digest app can build; so the subscribers' admin lives here, above both apps.
"""

from digest.admin import pipeline, subscribers  # noqa: F401 - each module registers its ModelAdmins
