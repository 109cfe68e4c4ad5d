"""Calendars: a user's one calendar connection, its busy cache and how it stays fresh.

``connect`` starts, finishes, replaces and disconnects connections; ``sync`` refreshes busy
blocks; ``push`` keeps provider push channels; ``status`` says what a connection means to a
person; ``health`` turns status and busy kinds into reasons and fixing actions;
``oauth_apps`` holds an organization's own OAuth apps; ``coverage`` fetches ranges beyond
the horizon on demand, through ``org_reads`` for people an organization's integration
covers; ``deps`` is what these need from the process (settings, providers, secrets).
Imports only people and the layers underneath.
"""

__all__ = [
    "connect",
    "coverage",
    "deps",
    "health",
    "oauth_apps",
    "org_reads",
    "push",
    "status",
    "sync",
]
