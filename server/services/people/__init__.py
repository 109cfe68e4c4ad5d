"""People: accounts and sign-in (``accounts``, ``sessions``, ``api_tokens``), who may see
and act for whom (``access``), programs and their settings (``programs``), mentoring
connections (``mentoring``), administrators' changes to people (``provisioning``) and
one-time account setup links (``setup``). The bottom domain: imports only the layers underneath.
"""

__all__ = [
    "access",
    "accounts",
    "api_tokens",
    "mentoring",
    "programs",
    "provisioning",
    "sessions",
    "setup",
]
