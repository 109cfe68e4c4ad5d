"""Group polls: the rules of creating, answering, closing and finalizing (``rules``), the
tally with busy marks (``tally``), ranked slot suggestions (``suggestions``) and the poll
notifications (``mail``). The top domain: imports meetings and everything below.
"""

__all__ = ["mail", "rules", "suggestions", "tally"]
