"""Group polls: the rules of creating, answering, closing and finalizing (``rules``), the
tally with busy marks (``tally``), ranked slot suggestions (``suggestions``), the poll
notifications (``mail``), the slots' heat map (``heat``) and the home page's "needs your answer" (``dashboard``). The top
domain: imports meetings and everything below.
"""

__all__ = ["dashboard", "heat", "mail", "rules", "suggestions", "tally"]
