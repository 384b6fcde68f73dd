"""Outgoing mail: backends, the SMTP client, MIME, DKIM, send rate, rendering helpers.

It imports neither `digest` nor `subscribers`: what it needs of them comes in as arguments.
"""
