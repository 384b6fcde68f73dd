"""The admin of both apps' models.

The subscriber pages show each subscriber's digests and a preview of the next one, which only
the digest app can build; so the subscribers' admin lives here, above both apps.
"""

from django.conf import settings
from django.contrib import admin

from digest.admin import pipeline, subscribers  # noqa: F401 - each module registers its ModelAdmins

admin.site.site_header = f"{settings.SITE_NAME} administration"
admin.site.site_title = f"{settings.SITE_NAME} admin"
admin.site.index_title = "Papers, feeds, subscribers and their digests"
