"""Celery tasks, thin: each takes ids, loads rows and calls one plain function.

One module per feature; Celery's autodiscovery imports this package.
"""

# Autodiscovery imports this package only: each module's tasks register by being imported here.
from digest.tasks.ingest import *  # noqa: F403
from digest.tasks.liked import *  # noqa: F403
from digest.tasks.matching import *  # noqa: F403
from digest.tasks.polling import *  # noqa: F403
from digest.tasks.retention import *  # noqa: F403
from digest.tasks.sending import *  # noqa: F403
from digest.tasks.vectors import *  # noqa: F403
